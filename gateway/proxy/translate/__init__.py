"""Translation between the OpenAI and Anthropic wire formats.

``requests`` maps request bodies (OpenAI chat ⇄ Anthropic Messages, and text
completions onto chat), ``responses`` maps whole answers, ``streams`` maps
stream events one at a time, and ``validate`` checks client bodies before any
of that happens. Every function here is pure: dicts in, dicts out.
"""
