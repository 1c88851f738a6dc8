"""The shared template macros, installed once as Jinja globals.

Global rather than imported at the top of each template: an htmx fragment renders one
block of its template alone, and a block does not see what the template imported.
"""

from __future__ import annotations

from flask import Flask

MACROS = {
    "partials/_forms.html": ("field", "submit"),
    "partials/_code_tabs.html": ("code_tabs", "code_block"),
    "partials/_price_table.html": ("price_table",),
    "partials/_load_more.html": ("load_more",),
    "partials/_filters.html": ("filter_bar", "filter_select", "filter_input", "log_filter_fields", "filter_actions"),
}


def register_macros(app: Flask) -> None:
    """Make every shared macro callable from any template or block by its name."""
    for template_name, names in MACROS.items():
        module = app.jinja_env.get_template(template_name).module
        for name in names:
            app.jinja_env.globals[name] = getattr(module, name)
