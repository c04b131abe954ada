"""A static, self-contained HTML report: videos, figures and tables, no server needed.

Media files sit next to ``report.html`` and are referenced by relative paths, so the folder can
be zipped, copied or opened straight from disk in a browser.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["HtmlReport"]

_STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
video, img { max-width: 100%; border: 1px solid #ccc; border-radius: 4px; }
figure { margin: 1rem 0; } figcaption { color: #555; font-size: 0.9rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
p.note { color: #555; font-size: 0.9rem; }
"""


@dataclass
class HtmlReport:
    """Builds ``report.html`` in ``folder`` from sections added in order.

    Args:
        folder: Output folder; media paths are relative to it.
        title: Page title.
    """

    folder: Path
    title: str
    _parts: list[str] = field(default_factory=list)

    def heading(self, text: str) -> None:
        """Start a section."""
        self._parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str, note: bool = False) -> None:
        """A paragraph of plain text."""
        cls = ' class="note"' if note else ""
        self._parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def video(self, path: Path, caption: str) -> None:
        """A looping, muted, autoplaying video (browsers allow muted autoplay)."""
        rel = self._relative(path)
        mime = "video/webm" if path.suffix == ".webm" else "video/mp4"
        self._parts.append(
            f'<figure><video controls autoplay muted loop playsinline preload="auto">'
            f'<source src="{html.escape(rel)}" type="{mime}"></video>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    def image(self, path: Path, caption: str) -> None:
        """A figure."""
        rel = self._relative(path)
        self._parts.append(
            f'<figure><img src="{html.escape(rel)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        """A table; floats are shown with 3 decimals."""

        def cell(v: object) -> str:
            return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))

        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows
        )
        self._parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def write(self) -> Path:
        """Write ``report.html`` and return its path."""
        self.folder.mkdir(parents=True, exist_ok=True)
        page = (
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{html.escape(self.title)}</h1>{''.join(self._parts)}</body></html>"
        )
        out = self.folder / "report.html"
        tmp = out.with_suffix(".html.tmp")
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(out)
        return out

    def _relative(self, path: Path) -> str:
        try:
            return Path(path).resolve().relative_to(self.folder.resolve()).as_posix()
        except ValueError as exc:
            raise ValueError(f"{path} is not inside the report folder {self.folder}") from exc
