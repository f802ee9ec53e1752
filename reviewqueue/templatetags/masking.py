"""`{{ text|masked }}`: agent or reviewer text with personal data masked, for every viewer.

`{{ text|masked:revealed }}` shows it in the clear only when `revealed` is true,
i.e. on an action's page answering an audited reveal (views.action_reveal);
never pass a mere permission (`may_reveal`) here.

Mask before `truncatechars`, never after: a cut could leave part of a card
number that the detectors no longer recognise.
"""

from django import template

from reviewqueue.privacy.masking import text_mask

register = template.Library()


@register.filter
def masked(text, revealed=False) -> str:
    if text is None:
        return ""
    return str(text) if revealed else text_mask(str(text))
