"""mkdocs hook: the package's docstrings use Sphinx cross-reference roles (:func:`name`,
:class:`~pkg.mod.Name`, ...). Markdown renders them as ``:func:<code>name</code>``; this hook
drops the role and, as Sphinx does for a leading ``~``, keeps only the last dotted component."""

import re

_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|data|attr|exc|obj|const):<code>(~?)([^<]+)</code>")


def _plain(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"<code>{target.rsplit('.', 1)[-1] if tilde else target}</code>"


def on_page_content(html, **kwargs):
    return _ROLE.sub(_plain, html)
