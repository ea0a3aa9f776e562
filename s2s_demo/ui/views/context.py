"""What a tab's ``build`` needs from the page: the models, the current trace, the text, model and
decoding controls, and the controls' labels (a refused request names its control by them)."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..registry import ModelRegistry


@dataclass
class PageContext:
    registry: ModelRegistry
    trace: gr.State
    text: gr.Textbox
    model: gr.Dropdown
    controls: list
    labels: dict[str, str]
