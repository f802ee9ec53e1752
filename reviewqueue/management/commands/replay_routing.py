from collections import Counter

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

import riskrouter
from config.env import parse_duration
from reviewqueue.models import Action


class Command(BaseCommand):
    help = (
        "Route past actions again with the current policy and model and show how their tiers would change, "
        "so a threshold or rule change is judged before it ships. Changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", default="7d", help="How far back: 7d, 24h, 90m (default 7d).")
        parser.add_argument("--examples", type=int, default=10, help="How many changed actions to list.")

    def handle(self, *args, since, examples, **options):
        try:
            start = timezone.now() - parse_duration(since)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        router = riskrouter.current_router()
        moves, changed, total = Counter(), [], 0
        actions = Action.objects.filter(created_at__gte=start).select_related("agent").order_by("created_at")
        for action in actions.iterator(chunk_size=1000):
            route = riskrouter.route(
                action.router_input(),
                router=router,
            )
            total += 1
            moves[(action.tier, str(route.tier))] += 1
            if str(route.tier) != action.tier and len(changed) < examples:
                changed.append((action, route))
        tiers = ["auto", "async_review", "blocking"]
        self.stdout.write(
            f"{total} actions since {start:%Y-%m-%d %H:%M} UTC, routed again with model {router.model_version}"
        )
        self.stdout.write(f"{'was → now':<14}" + "".join(f"{t:>14}" for t in tiers))
        for was in tiers:
            self.stdout.write(f"{was:<14}" + "".join(f"{moves[(was, now)]:>14}" for now in tiers))
        up = sum(n for (was, now), n in moves.items() if tiers.index(now) > tiers.index(was))
        down = sum(n for (was, now), n in moves.items() if tiers.index(now) < tiers.index(was))
        self.stdout.write(f"would go up a tier: {up}; down: {down}; unchanged: {total - up - down}")
        for action, route in changed:
            self.stdout.write(
                f"  {action.pk} {action.agent.name} {action.action_type}: {action.tier} → {route.tier}"
                f" ({'; '.join(route.reasons[:2])})"
            )
