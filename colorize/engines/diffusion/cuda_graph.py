"""The UNet call of a shot as a CUDA graph (`diffusion.cuda_graph: true`).

At the working sizes the engine runs, one eager UNet call is ~2 300 small kernels and the GPU waits on
their launches (measured on an H100: 50-87 ms per call at batch 1 for ~20 ms of kernels). A CUDA graph
records the kernels of one call once and replays them with a single launch. Its shapes and addresses are
fixed, which the engine guarantees: every call of a shot has the same shape (`--batch` frames × guidance
branches, a fixed latent size) and reads

- per step: x and t, copied into the graph's static input tensors;
- per batch: the sketch hints and region masks (`pipeline.BatchInputs`), copied into static tensors;
- per shot: the reference context, background features and style vectors, read where they lie (the graph
  keeps them alive).

The replayed kernels are the eager kernels (capture records them; cuDNN is deterministic and not
benchmarking, and the attention backend is chosen by shape), so the outputs are expected to equal the eager
path's bit for bit; `bench/bench_gpu.py` compares the bytes. Until a GPU run has shown it, the setting is
off by default and part of the settings that decide freshness.
"""

from __future__ import annotations

import torch

from .conditioning import Conditioning
from .pipeline import BatchInputs, ColorizeDiffusionPipeline, predict

WARMUP_CALLS = 2  # eager calls on a side stream before capture (lazy initialisation, workspaces)


class GraphedModelCall:
    """`model_call(x, t)` of one shot and batch shape, replayed from a CUDA graph captured on first use."""

    def __init__(self, model: ColorizeDiffusionPipeline, conditioning: Conditioning):
        self.model = model
        self.conditioning = conditioning
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: BatchInputs | None = None  # static per-batch inputs (the graph reads these tensors)
        self.x: torch.Tensor | None = None
        self.t: torch.Tensor | None = None
        self.out: torch.Tensor | None = None

    def load(self, inputs: BatchInputs) -> GraphedModelCall:
        """Take a new batch's inputs (same shapes as the first batch's)."""
        if self.inputs is None:
            self.inputs = BatchInputs(
                context=inputs.context.clone(),
                hints=[h.clone() for h in inputs.hints],
                region_masks=None if inputs.region_masks is None else inputs.region_masks.clone(),
            )
            return self
        self.inputs.context.copy_(inputs.context)
        for static, h in zip(self.inputs.hints, inputs.hints, strict=True):
            static.copy_(h)
        if self.inputs.region_masks is not None and inputs.region_masks is not None:
            self.inputs.region_masks.copy_(inputs.region_masks)
        return self

    def _capture(self, x: torch.Tensor, t: torch.Tensor) -> None:
        assert self.inputs is not None
        self.x, self.t = x.clone(), t.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(WARMUP_CALLS):
                predict(self.model, self.conditioning, self.inputs, self.x, self.t)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        # thread_local: the reader and writer threads may use CUDA (pinned memory) while this thread captures.
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            self.out = predict(self.model, self.conditioning, self.inputs, self.x, self.t)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.graph is None:
            self._capture(x, t)
        else:
            assert self.x is not None and self.t is not None
            self.x.copy_(x)
            self.t.copy_(t)
        assert self.graph is not None and self.out is not None
        self.graph.replay()
        return self.out.clone()
