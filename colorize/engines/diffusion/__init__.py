"""ColorizeDiffusion v2 (arXiv 2504.06895) on diffusers and torch.

Modules: `unet` (v2 UNet, skip injection, style modulation), `attention` (N-character split
cross-attention, fg/bg LoRA), `sketch_encoder`, `encoders` (background/style), `blocks` (shared diffusers
blocks), `reference` (CLIP tokens; OpenCLIP -> transformers), `embeddings` (size embedding), `config`
(official config -> component configs), `pipeline` (`ColorizeDiffusionPipeline`, the diffusers pipeline of
the components, and its `__call__`, the one batch function), `conditioning` (the per-shot references),
`model_folder` (the folder layout and its checks, info, random folders), `loading` (safe weight-file
reading), `convert` (official checkpoint -> modules), `sampling` (schedulers, guidance rule), `engine`
(shots through the pipeline), `preprocess` (masks, sketches, working size), `parity` (fixture checks). Nothing is imported here so that `import colorize` stays light.
"""
