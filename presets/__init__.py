"""Named settings files (installed as `colorize_presets`); see colorize.manifest.load_preset."""
