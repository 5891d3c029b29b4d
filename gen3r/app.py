"""``gen3r app``: the gradio web app. Upload one or two images or a video, choose the task (auto from
the inputs), a camera preset or a camera file, prompt, steps and seed; get the generated video, the
depth video, the 3D scene (GLB) and every output file to download.

Design: :class:`Gen3RApp` holds the loaded pipeline and a work folder; each run exports a normal
output folder there (:func:`gen3r.io.results.export_output`, the files ``gen3r generate`` writes)
plus a zip of it. Changing the point filter or the camera display re-exports the GLB from that folder
(:func:`gen3r.io.scene.load_output`) without running the model. One job at a time (gradio's queue),
uploads capped in size, bad input answered with a one-line ``gr.Error``; state between events is a
folder path (files and JSON only, nothing pickled). Binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gen3r.cameras import TRAJECTORY_PRESETS
from gen3r.errors import Gen3RError
from gen3r.io.exporters import write_glb
from gen3r.io.results import export_output, export_scene
from gen3r.io.scene import load_output
from gen3r.io.viewer import check_address
from gen3r.pipeline.preprocess import read_frames, read_image, resize_and_center_crop, validate_camera_source
from gen3r.pipeline.reconstruct import reconstruct_video

logger = logging.getLogger(__name__)

TASK_CHOICES = ("auto", "1view", "2view", "allview")
FREE = "free"
#: Points in the GLB shown in the browser (a fixed random subset beyond it).
GLB_MAX_POINTS = 200_000
#: A video longer than this many clips is cut (allview runs clip by clip).
MAX_VIDEO_CLIPS = 4


def infer_task(task: str, first: str | None, last: str | None, video: str | None) -> str:
    """The pipeline task for the uploaded inputs; Gen3RError when they do not fit ``task``."""
    if task not in TASK_CHOICES:
        raise Gen3RError(f"unknown task {task!r}; choose one of {', '.join(TASK_CHOICES)}")
    if video and (first or last):
        raise Gen3RError("upload images or a video, not both: clear one of them")
    if last and not first:
        raise Gen3RError("a last frame needs a first frame: upload the first frame too")
    found = "allview" if video else "2view" if last else "1view" if first else None
    if found is None:
        raise Gen3RError("upload a first frame (1view), first and last frames (2view) or a video (allview)")
    if task != "auto" and task != found:
        needs = {"1view": "one image (first frame)", "2view": "two images (first and last frame)",
                 "allview": "a video"}[task]
        raise Gen3RError(f"task {task} needs {needs}, but the upload fits {found}; change the task or the upload")
    return found


class Gen3RApp:
    """The app's logic (testable without a browser): :meth:`generate` and :meth:`refilter`."""

    def __init__(self, pipe, work_dir: str | Path | None = None, max_video_clips: int = MAX_VIDEO_CLIPS) -> None:
        self.pipe = pipe
        self.defaults = dict(pipe.call_defaults)
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="gen3r-app-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.max_video_clips = max_video_clips

    # -- runs --------------------------------------------------------------------------------------
    def _job_dir(self) -> Path:
        return self.work_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"

    def generate(self, first: str | None, last: str | None, video: str | None, task: str = "auto",
                 camera: str = FREE, camera_file: str | None = None, prompt: str = "", steps: int | None = None,
                 seed: int = 0, progress: Callable[[float, str], Any] | None = None) -> dict[str, Any]:
        """Run the model on the uploads and export an output folder.

        Returns ``{"folder", "rgb", "depth", "glb", "files", "task"}`` (paths as str; ``files`` is
        every output file plus ``gen3r-output.zip``).
        """
        import torch

        task = infer_task(task, first, last, video)
        d = self.defaults
        steps = int(d["num_inference_steps"] if steps is None else steps)
        if not 1 <= steps <= 1000:
            raise Gen3RError(f"steps must be between 1 and 1000, got {steps}")
        seed = int(seed)
        frames, height, width = d["num_frames"], d["height"], d["width"]
        cameras = camera_file or (None if camera in (None, "", FREE) else camera)
        if cameras is not None and task == "allview":
            raise Gen3RError("a video is reconstructed without camera control; set the camera to free")
        if cameras is not None:
            validate_camera_source(str(cameras), num_frames=frames, image_size=(height, width))
        generator = torch.Generator().manual_seed(seed)
        folder = self._job_dir()
        settings = {"task": task, "prompt": prompt, "num_inference_steps": steps, "seed": seed,
                    "cameras": Path(camera_file).name if camera_file else (cameras or FREE),
                    "checkpoint": self.pipe.checkpoint_path}
        report = progress or (lambda fraction, desc: None)

        def on_step(pipe, i, t, state):
            report((i + 1) / steps, "denoising")
            return None

        if task == "allview":
            assert video, "infer_task returns allview only for a video upload"
            clip = read_frames(video, max_frames=frames * self.max_video_clips)
            if clip.shape[0] < frames:
                raise Gen3RError(f"the video has {clip.shape[0]} frames; allview needs at least {frames}: upload a "
                                 "longer video")
            clip = resize_and_center_crop(clip, height, width)
            result = reconstruct_video(self.pipe, clip, window=frames, overlap=None, mode="generate", prompt=prompt,
                                       num_inference_steps=steps, generator=generator)
            export_scene(folder, rgb=result.rgb, depth=result.depth, world_points=result.world_points,
                         cameras=result.cameras, depth_conf=result.depth_conf, point_mask=result.point_mask,
                         settings={**settings, "windows": result.windows})
        else:
            assert first, "infer_task returns 1view or 2view only with a first frame"
            images = [read_image(first)] + ([read_image(last)] if last else [])
            output = self.pipe(images, task=task, cameras=cameras, prompt=prompt, num_inference_steps=steps,
                               generator=generator, callback_on_step_end=on_step)
            export_output(output, folder, settings=settings)
        report(1.0, "exporting")
        archive = shutil.make_archive(str(folder.parent / f"{folder.name}-gen3r-output"), "zip", folder)
        files = [str(p) for p in sorted(folder.iterdir()) if p.is_file()] + [archive]
        logger.info("app: %s -> %s", task, folder)
        return {"folder": str(folder), "rgb": str(folder / "rgb.mp4"), "depth": str(folder / "depth.mp4"),
                "glb": self.refilter(str(folder)), "files": files, "task": task}

    def refilter(self, folder: str, min_confidence: float = 0.0, max_depth: float = 100.0,
                 show_cameras: bool = True) -> str:
        """Re-export the GLB of a finished run with another point filter / camera display (no model
        run). Returns the new GLB's path (a new name each time, so browsers do not show a cached one)."""
        if not folder:
            raise Gen3RError("nothing generated yet: run the model first")
        scene = load_output(folder)
        points, colors, _ = scene.select(min_confidence_percentile=float(min_confidence),
                                         max_depth_percentile=float(max_depth), max_points=GLB_MAX_POINTS)
        if not len(points):
            raise Gen3RError("the filter removed every point; lower the confidence or raise the depth percentile")
        path = Path(folder) / "views" / f"scene-{uuid.uuid4().hex[:8]}.glb"
        path.parent.mkdir(exist_ok=True)
        write_glb(path, points, colors, scene.cameras if show_cameras else None)
        return str(path)


def _gr_error(fn: Callable) -> Callable:
    """Run ``fn``; a Gen3RError becomes a one-line ``gr.Error`` shown in the page."""
    import functools

    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Gen3RError as exc:
            raise gr.Error(" ".join(str(exc).split())) from None

    return wrapper


def build_ui(app: Gen3RApp, examples: Sequence[tuple[str, str]] = ()):
    """The gradio Blocks of ``app``; ``examples``: (image path, prompt) pairs shown one click away."""
    import gradio as gr

    d = app.defaults
    with gr.Blocks(title="Gen3R", analytics_enabled=False) as ui:
        gr.Markdown(f"## Gen3R: an image or a video to a video and its 3D scene\n"
                    f"Model: `{app.pipe.checkpoint_path or 'in memory'}`, {d['num_frames']} frames of "
                    f"{d['height']} x {d['width']}. Upload a first frame (1view), first and last frames (2view) "
                    "or a video (allview reconstruction).")
        folder = gr.State("")
        with gr.Row():
            with gr.Column():
                with gr.Row():
                    first = gr.Image(type="filepath", label="first frame", elem_id="first")
                    last = gr.Image(type="filepath", label="last frame (2view, optional)", elem_id="last")
                video = gr.Video(label="video (allview, optional)", elem_id="video", sources=["upload"])
                task = gr.Dropdown(list(TASK_CHOICES), value="auto", label="task (auto: from the uploads)")
                with gr.Row():
                    camera = gr.Dropdown([FREE, *TRAJECTORY_PRESETS], value=FREE, label="camera preset")
                    camera_file = gr.File(label="or a camera file (cameras.json, RealEstate10K .txt, "
                                                "transforms.json)", file_types=[".json", ".txt"], type="filepath")
                prompt = gr.Textbox(label="prompt", placeholder="a cosy living room")
                with gr.Row():
                    steps = gr.Slider(1, 100, value=int(d["num_inference_steps"]), step=1, label="steps")
                    seed = gr.Number(value=0, precision=0, label="seed")
                run = gr.Button("Generate", variant="primary", elem_id="run")
            with gr.Column():
                rgb = gr.Video(label="generated video", elem_id="rgb", interactive=False, height=256, autoplay=True,
                               loop=True)
                depth = gr.Video(label="depth", elem_id="depth", interactive=False, height=256, autoplay=True,
                                 loop=True)
                scene = gr.Model3D(label="3D scene (points and cameras)", elem_id="scene",
                                   clear_color=(1.0, 1.0, 1.0, 1.0), height=360)
                with gr.Row():
                    min_conf = gr.Slider(0, 99, value=0, step=1, label="min confidence percentile")
                    max_depth = gr.Slider(50, 100, value=100, step=1, label="max depth percentile")
                    show_cameras = gr.Checkbox(value=True, label="show cameras")
                files = gr.File(label="output files", file_count="multiple", elem_id="files", interactive=False)

        def on_run(first_v, last_v, video_v, task_v, camera_v, camera_file_v, prompt_v, steps_v, seed_v,
                   progress=gr.Progress()):  # noqa: B008 (gradio injects its tracker through the default)
            result = app.generate(first_v, last_v, video_v, task_v, camera_v, camera_file_v, prompt_v, steps_v,
                                  seed_v, progress=lambda f, desc: progress(f, desc=desc))
            return result["rgb"], result["depth"], result["glb"], result["files"], result["folder"]

        run.click(_gr_error(on_run), [first, last, video, task, camera, camera_file, prompt, steps, seed],
                  [rgb, depth, scene, files, folder], concurrency_limit=1)
        for control in (min_conf, max_depth, show_cameras):
            control.change(_gr_error(lambda f, c, m, s: app.refilter(f, c, m, s) if f else None),
                           [folder, min_conf, max_depth, show_cameras], scene)
        if examples:
            gr.Examples([[str(path), caption] for path, caption in examples], inputs=[first, prompt],
                        label="examples (one click)", cache_examples=False)
    return ui


def offline_theme():
    """gradio's default theme with system fonts (no font download from the web)."""
    from gradio.themes import Default

    return Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def launch(app: Gen3RApp, host: str = "127.0.0.1", port: int = 7860, max_upload_mb: int = 50,
           examples: Sequence[tuple[str, str]] = (), block: bool = True):
    """Serve ``app`` (one job at a time, queue of 8, uploads up to ``max_upload_mb``). Returns the
    Blocks (``block=False``: running in the background; call ``.close()``)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    check_address(host, port)
    ui = build_ui(app, examples)
    ui.queue(max_size=8, default_concurrency_limit=1)
    ui.launch(server_name=host, server_port=port, max_file_size=f"{int(max_upload_mb)}mb", prevent_thread_lock=True,
              show_error=True, quiet=True, allowed_paths=[str(app.work_dir)], theme=offline_theme(),
              footer_links=[], ssr_mode=False)
    logger.info("app on http://%s:%d", host, port)
    if block:
        try:
            ui.block_thread()
        finally:
            ui.close()
    return ui
