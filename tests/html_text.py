"""Reading the HTML pages the dashboard and the monitoring report render: a section by its id,
and the visible text of a fragment."""

import html
import re


def section(page: str, section_id: str) -> str:
    found = re.search(rf'<section id="{section_id}">(.*?)</section>', page, re.S)
    assert found, f"no section {section_id}"
    return found.group(1)


def visible_text(fragment: str) -> str:
    """The visible text (scripts, i.e. the figures' data, removed; entities decoded)."""
    fragment = re.sub(r"<script.*?</script>", " ", fragment, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)))
