"""MJCF scene assembly: table, lights, the top camera, both grippers, and task content.

Tasks add their own bodies, assets, equalities and so on as MJCF fragments; the builder places
them into one document so that every task shares the same table, robot and cameras.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sarm2_gym.envs.core.embodiment import (
    ARMS,
    grasp_equalities_xml,
    gripper_actuators_xml,
    gripper_body_xml,
)
from sarm2_gym.envs.core.geometry import look_at_xyaxes

__all__ = ["TOP_CAMERA_EYE", "TOP_CAMERA_TARGET", "PhysicsOptions", "SceneBuilder"]

TOP_CAMERA_EYE = np.array([-0.55, 0.0, 0.78])
TOP_CAMERA_TARGET = np.array([0.08, 0.0, 0.0])
TABLE_HALF_EXTENT = (0.55, 0.7)  # metres, x (away from the robot) and y (robot's left)


@dataclass(frozen=True, slots=True)
class PhysicsOptions:
    """Solver settings of a task.

    Args:
        timestep: Physics step in seconds; the control period is a whole number of them.
        solver: ``"CG"`` for cloth (3-20x faster than Newton there, same results), ``"Newton"``
            for rigid scenes.
        iterations: Solver iterations.
        tolerance: Solver tolerance; cloth with self-collision needs 1e-6 (looser settings blow
            up, see platform notes).
        integrator: MuJoCo integrator.
        cone: Friction cone.
        noslip_iterations: Extra no-slip iterations (helps grasped rigid objects).
    """

    timestep: float = 0.005
    solver: str = "Newton"
    iterations: int = 50
    tolerance: float = 1e-8
    integrator: str = "implicitfast"
    cone: str = "pyramidal"
    noslip_iterations: int = 0


@dataclass
class SceneBuilder:
    """Collects MJCF fragments and renders the full model document.

    Args:
        name: Model name.
        physics: Solver settings.
    """

    name: str
    physics: PhysicsOptions = field(default_factory=PhysicsOptions)
    assets: list[str] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)
    equalities: list[str] = field(default_factory=list)
    actuators: list[str] = field(default_factory=list)
    contacts: list[str] = field(default_factory=list)
    sensors: list[str] = field(default_factory=list)
    extensions: list[str] = field(default_factory=list)
    table_rgba: str = "0.62 0.55 0.46 1"

    def add_asset(self, xml: str) -> None:
        """Add an ``<asset>`` child (texture, material, mesh)."""
        self.assets.append(xml)

    def add_body(self, xml: str) -> None:
        """Add a ``<worldbody>`` child (body, geom, site, flexcomp, composite)."""
        self.bodies.append(xml)

    def add_equality(self, xml: str) -> None:
        """Add an ``<equality>`` child."""
        self.equalities.append(xml)

    def add_actuator(self, xml: str) -> None:
        """Add an ``<actuator>`` child."""
        self.actuators.append(xml)

    def add_contact(self, xml: str) -> None:
        """Add a ``<contact>`` child (pair or exclude)."""
        self.contacts.append(xml)

    def add_sensor(self, xml: str) -> None:
        """Add a ``<sensor>`` child."""
        self.sensors.append(xml)

    def add_extension(self, xml: str) -> None:
        """Add an ``<extension>`` child (engine plugins such as the cloth shell model)."""
        self.extensions.append(xml)

    def to_xml(self) -> str:
        """Render the MJCF document."""
        p = self.physics
        top_axes = look_at_xyaxes(TOP_CAMERA_EYE, TOP_CAMERA_TARGET)
        eye = " ".join(f"{v}" for v in TOP_CAMERA_EYE)
        tx, ty = TABLE_HALF_EXTENT
        robot_bodies = "".join(gripper_body_xml(a) for a in ARMS)
        robot_acts = "".join(gripper_actuators_xml(a) for a in ARMS)
        robot_eqs = "".join(grasp_equalities_xml(a) for a in ARMS)
        ext = f"<extension>{''.join(self.extensions)}</extension>" if self.extensions else ""
        sensors = f"<sensor>{''.join(self.sensors)}</sensor>" if self.sensors else ""
        contacts = f"<contact>{''.join(self.contacts)}</contact>" if self.contacts else ""
        return f"""<mujoco model="{self.name}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{p.timestep}" solver="{p.solver}" iterations="{p.iterations}"
          tolerance="{p.tolerance}" integrator="{p.integrator}" cone="{p.cone}"
          noslip_iterations="{p.noslip_iterations}"/>
  <size memory="64M"/>
  <visual>
    <global offwidth="640" offheight="640"/>
    <quality shadowsize="0" offsamples="0"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.5 0.5 0.5" specular="0.05 0.05 0.05"/>
  </visual>
  {ext}
  <asset>
    <texture name="table_tex" type="2d" builtin="checker" width="64" height="64"
             rgb1="0.62 0.55 0.46" rgb2="0.58 0.51 0.42"/>
    <material name="table_mat" texture="table_tex" texrepeat="6 6" specular="0" shininess="0"/>
    {"".join(self.assets)}
  </asset>
  <worldbody>
    <light name="key" pos="0.2 0.3 1.6" dir="-0.1 -0.2 -1" directional="true" castshadow="false"
           diffuse="0.55 0.55 0.55"/>
    <geom name="table" type="plane" size="{tx} {ty} 0.05" material="table_mat"
          friction="0.9 0.01 0.001" contype="1" conaffinity="1"/>
    <camera name="top" pos="{eye}" xyaxes="{top_axes}" fovy="58"/>
    {robot_bodies}
    {"".join(self.bodies)}
  </worldbody>
  <equality>{robot_eqs}{"".join(self.equalities)}</equality>
  <actuator>{robot_acts}{"".join(self.actuators)}</actuator>
  {contacts}
  {sensors}
</mujoco>"""
