"""colorize: batch colorization of animation line-art shots from reference images."""

__version__ = "0.1.0"
