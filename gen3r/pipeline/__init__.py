"""The Gen3R pipeline: owns the sampling loop and the decoding of video and geometry."""

from gen3r.pipeline.output import Gen3ROutput
from gen3r.pipeline.pipeline_gen3r import Gen3RPipeline

__all__ = ["Gen3RPipeline", "Gen3ROutput"]
