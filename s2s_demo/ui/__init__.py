"""The Gradio demo: a registry of loaded models, renderers from a Trace, the Blocks."""
