"""The page's views: each a function from a trace dict (and the view's own options) to a dict of
component updates by name; a None trace clears the view. ``s2s_demo.ui.blocks`` lays them out
and maps the names to its components."""
