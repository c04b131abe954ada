"""Episodes, LeRobot v3.0 datasets, and label math."""

from __future__ import annotations

from sarm2_gym.data.columns import add_frame_columns
from sarm2_gym.data.episode import CAMERA_NAMES, IMAGE_KEYS, Episode, image_key
from sarm2_gym.data.layout import CODEBASE_VERSION, DatasetFormatError
from sarm2_gym.data.reader import LeRobotDataset
from sarm2_gym.data.sarm_progress import (
    SARM_PROGRESS_FILE,
    read_sarm_progress,
    write_sarm_progress,
)
from sarm2_gym.data.writer import LeRobotDatasetWriter

__all__ = [
    "CAMERA_NAMES",
    "CODEBASE_VERSION",
    "IMAGE_KEYS",
    "SARM_PROGRESS_FILE",
    "DatasetFormatError",
    "Episode",
    "LeRobotDataset",
    "LeRobotDatasetWriter",
    "add_frame_columns",
    "image_key",
    "read_sarm_progress",
    "write_sarm_progress",
]
