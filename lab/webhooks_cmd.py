"""``wardtwin webhooks rekey``: seal every stored webhook secret again under the newest key (hazard H18).

The rotation's middle step (``app.security.secrets_box``): after a new first line went into every instance's key file,
and before the old line is dropped. Works on the configured service's control store (``--data-dir``, else
``WARDTWIN_DATA_DIR``; ``WARDTWIN_CONTROL_DB`` when set) with its key file, so it reads its settings on purpose. A row
still in plain text is sealed too. One transaction under the webhook lock: safe while the service runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.alerts.store import AlertStore
from app.alerts.webhooks import WebhookStore
from app.security.secrets_box import SecretBox, SecretsKeyError
from app.settings import Settings


def rekey(*, data_dir: Path | None) -> int:
    """Re-seal every secret; 1 (naming them) when some open with no key in the file, 2 when the key file is
    unreadable or malformed, else 0."""
    settings = Settings(**({"data_dir": data_dir} if data_dir else {}))
    try:
        box = SecretBox.from_settings(settings)
    except SecretsKeyError as exc:
        print(exc)  # noqa: T201
        return 2
    done, unreadable = asyncio.run(_rekey(settings, box))
    print(f"re-sealed {done} webhook secret(s) with the newest key of {box.source}")  # noqa: T201 (the CLI's output)
    if unreadable:
        print(f"not re-sealed, no key in {box.source} opens them: {', '.join(unreadable)}")  # noqa: T201
        return 1
    return 0


async def _rekey(settings: Settings, box: SecretBox) -> tuple[int, list[str]]:
    alerts = AlertStore(settings.control_target)  # alerts.db, or the PostgreSQL control store
    await alerts.open()
    try:
        hooks = WebhookStore(alerts.db, box=box)
        await hooks.open()
        return await hooks.rekey()
    finally:
        await alerts.close()
