"""`{{ text|masked:may_reveal }}`: agent or reviewer text with personal data masked, unless the viewer may reveal.

Mask before `truncatechars`, never after: a cut could leave part of a card
number that the detectors no longer recognise.
"""

from django import template

from reviewqueue.privacy import text_mask

register = template.Library()


@register.filter
def masked(text, may_reveal=False) -> str:
    if text is None:
        return ""
    return str(text) if may_reveal else text_mask(str(text))
