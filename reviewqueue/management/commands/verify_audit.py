from django.core.management.base import BaseCommand, CommandError

from reviewqueue.audit.trail import (
    ChainWalk,
    CheckpointLog,
    audit_check,
    checkpoint_append,
    checkpoint_path,
    checkpoints_read,
)


def chain_problems(walk: ChainWalk, checkpoints: CheckpointLog) -> list[str]:
    """What a walk of the chain and the checkpoint file found wrong, as sentences."""
    problems = []
    if walk.broken:
        problems.append(
            f"audit chain broken at event #{walk.broken.seq}: {walk.broken.problem} "
            f"({walk.checked} events verified before it)"
        )
    if checkpoints.forged:
        lines = ", ".join(map(str, checkpoints.forged))
        problems.append(
            f"audit checkpoints forged: line(s) {lines} of {checkpoint_path()} have a bad signature "
            f"(written by someone without the checkpoint key)"
        )
    return problems


class Command(BaseCommand):
    help = (
        "Check the whole audit hash chain against its signed checkpoints; exit 1 naming what differs. "
        "An intact chain gets a new checkpoint of its head."
    )

    def handle(self, *args, **options):
        checkpoints = checkpoints_read()
        walk = audit_check(checkpoints=checkpoints)
        if problems := chain_problems(walk, checkpoints):
            raise CommandError("; ".join(problems))
        if walk.head and (not checkpoints.newest or walk.head.seq > checkpoints.newest.seq):
            checkpoint_append(seq=walk.head.seq, digest=walk.head.hash)
        vouched = (
            f", matching {len(checkpoints.valid)} signed checkpoints"
            if checkpoints.valid
            else f", no signed checkpoint yet in {checkpoint_path()}"
        )
        self.stdout.write(f"audit chain intact: {walk.checked} events verified{vouched}")
