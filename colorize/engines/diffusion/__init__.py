"""ColorizeDiffusion v2 (arXiv 2504.06895) on diffusers and torch.

Modules: `unet` (v2 UNet, skip injection, style modulation), `attention` (N-character split
cross-attention, fg/bg LoRA), `sketch_encoder`, `encoders` (background/style), `blocks` (shared diffusers
blocks), `reference` (CLIP tokens; OpenCLIP -> transformers), `embeddings` (size embedding), `config`
(official config -> component configs), `modeling` (the `ColorizeDiffusionModel` container and the model
folder format), `loading` (safe weight-file reading), `convert` (official checkpoint -> modules),
`pipeline` (the sampling run: per-shot references and `denoise_batch`, the one batch function),
`sampling` (schedulers, guidance rule), `engine`
(shots through the pipeline), `preprocess` (masks, sketches, working size), `parity` (fixture checks),
`model_folder` (info, random folders). Nothing is imported here so that `import colorize` stays light.
"""
