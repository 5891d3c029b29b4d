"""The result type of :class:`gen3r.pipeline.Gen3RPipeline`."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from gen3r.cameras import Cameras
from gen3r.errors import Gen3RError


@dataclass
class Gen3ROutput:
    """Generated video and geometry for a batch of B scenes with F frames of size H x W.

    All 3D quantities are in the world frame of the generated first camera (VGGT's convention:
    frame 0 camera = world), in VGGT's normalised scene units (no metric scale).

    Attributes:
        rgb: (B, F, H, W, 3) float32 in [0, 1], decoded appearance.
        depth: (B, F, H, W) float32, z-depth along each camera's optical axis.
        depth_conf: (B, F, H, W) float32 >= 1, depth-head confidence.
        point_map: (B, F, H, W, 3) float32, world points from the point head.
        point_conf: (B, F, H, W) float32, point-head confidence.
        world_points: (B, F, H, W, 3) float64 tensor, ``depth`` unprojected with the generated
            cameras (official integer pixel grid, float64 like the official code).
        point_mask: (B, F, H, W) bool tensor, official percentile validity mask of ``depth``.
        extrinsics: (B, F, 3, 4) float32 OpenCV world-to-camera.
        intrinsics: (B, F, 3, 3) float32 in pixels of the H x W output.
        latents: (B, 16, f, H/8, 2W/8) final joint latent (appearance left, geometry right).
        With ``output_type="latent"`` only ``latents`` and ``info`` are set (nothing decoded); with
        ``"np"`` every array is a numpy array.
        info: resolved settings of the call (task, cameras, sizes, seed-free summary).
    """

    rgb: torch.Tensor | None = None
    depth: torch.Tensor | None = None
    depth_conf: torch.Tensor | None = None
    point_map: torch.Tensor | None = None
    point_conf: torch.Tensor | None = None
    world_points: torch.Tensor | None = None
    point_mask: torch.Tensor | None = None
    extrinsics: torch.Tensor | None = None
    intrinsics: torch.Tensor | None = None
    latents: torch.Tensor | None = None
    info: dict = field(default_factory=dict)

    def numpy(self) -> Gen3ROutput:
        """The same output with numpy arrays in place of tensors (``output_type="np"``)."""
        return Gen3ROutput(**{f.name: (getattr(self, f.name).numpy() if isinstance(getattr(self, f.name), torch.Tensor)
                                       else getattr(self, f.name)) for f in fields(self)})

    @property
    def image_size(self) -> tuple[int, int]:
        if self.rgb is None:
            raise Gen3RError("this output has no decoded frames (output_type='latent'); it has no image size")
        return int(self.rgb.shape[2]), int(self.rgb.shape[3])

    def cameras(self, index: int = 0):
        """The generated cameras of batch element ``index`` as :class:`gen3r.cameras.Cameras`."""

        if self.extrinsics is None or self.intrinsics is None:
            raise Gen3RError("this output has no decoded geometry (output_type='latent'); it has no cameras")
        return Cameras(extrinsics=self.extrinsics[index].float(), intrinsics=self.intrinsics[index].float(),
                       image_size=self.image_size)
