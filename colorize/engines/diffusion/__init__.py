"""ColorizeDiffusion v2 (arXiv 2504.06895) on diffusers and torch.

Modules: `unet` (v2 UNet, skip injection, style modulation), `attention` (N-character split
cross-attention, fg/bg LoRA), `sketch_encoder`, `encoders` (background/style), `vae`, `reference` (CLIP
tokens), `embeddings` (size embedding), `modeling` (the `ColorizeDiffusionModel` container), `convert`
(official checkpoint -> modules), `model_folder` (save/load/describe), `parity` (fixture check).
Nothing is imported here so that `import colorize` stays light.
"""
