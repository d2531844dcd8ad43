"""Write the env file that docker-compose.yml takes its Kafka passwords from.

One ``GRID_KAFKA_<PRINCIPAL>_PASSWORD`` line per principal of ``principals.yaml``, generated
once and kept in ``<dir>/principals.json`` (the same code as ``grid kafka start --secure``), so
running it again changes nothing and a principal added to the policy gets a password; and
``GRID_POSTGRES_PASSWORD`` for the read store, kept in ``<dir>/postgres.password``::

    .venv/bin/python deploy/kafka/compose_env.py            # -> var/compose/compose.env
    docker compose --env-file var/compose/compose.env up -d --build
"""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path

from streams.kafka_acl import POLICY, credentials, load_policy

REPO = Path(__file__).resolve().parents[2]


def env_name(principal: str) -> str:
    """The variable that holds ``principal``'s password (compose-node.sh derives the same)."""
    return f"GRID_KAFKA_{principal.upper()}_PASSWORD"


def write_env(directory: Path, policy_path: Path = POLICY) -> Path:
    """Write ``<directory>/compose.env`` (mode 600) and return its path."""
    passwords = credentials(directory, load_policy(policy_path))
    path = directory / "compose.env"
    path.touch(mode=0o600, exist_ok=True)
    os.chmod(path, 0o600)
    pg = directory / "postgres.password"
    if not pg.exists():
        pg.touch(mode=0o600)
        pg.write_text(secrets.token_urlsafe(24))
    lines = [f"{env_name(p)}={pw}\n" for p, pw in sorted(passwords.items())]
    path.write_text("".join(lines) + f"GRID_POSTGRES_PASSWORD={pg.read_text().strip()}\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=REPO / "var" / "compose",
                        help="where principals.json and compose.env go (default var/compose)")
    args = parser.parse_args()
    print(write_env(args.dir))


if __name__ == "__main__":
    main()
