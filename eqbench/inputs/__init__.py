"""Example-input generators: point clouds, graphs, images and grid signals built from a shrinkable structure."""
from eqbench.inputs.base import InputGenerator, InputStructure
from eqbench.inputs.graph import GraphInputs, fully_connected_edges
from eqbench.inputs.grid import GridSignalInputs
from eqbench.inputs.image import ImageInputs
from eqbench.inputs.point_cloud import PointCloudInputs

__all__ = ["GraphInputs", "GridSignalInputs", "ImageInputs", "InputGenerator", "InputStructure", "PointCloudInputs", "fully_connected_edges"]
