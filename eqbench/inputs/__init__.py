"""Example-input generators: point clouds, graphs, images, grid signals and n-body states built from a shrinkable structure."""
from eqbench.inputs.base import InputGenerator, InputStructure
from eqbench.inputs.graph import GraphInputs, fully_connected_edges
from eqbench.inputs.grid import GridSignalInputs
from eqbench.inputs.image import ImageInputs
from eqbench.inputs.nbody import NBodyInputs
from eqbench.inputs.point_cloud import PointCloudInputs

__all__ = ["GraphInputs", "GridSignalInputs", "ImageInputs", "InputGenerator", "InputStructure", "NBodyInputs", "PointCloudInputs", "fully_connected_edges"]
