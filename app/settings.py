"""The one place configuration is read: ``WARDTWIN_*`` environment variables (or ``.env``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AnyHttpUrl, Field, IPvAnyNetwork, PositiveInt, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from models.schema import NAME_PATTERN


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WARDTWIN_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    #: InfluxDB v1 HTTP API (1.8, 2.x compatibility endpoints, 3.x). None → embedded SQLite store.
    influx_url: AnyHttpUrl | None = None
    influx_database: str = Field("wardtwin", pattern=NAME_PATTERN.pattern)
    influx_retention_policy: str | None = Field(None, pattern=NAME_PATTERN.pattern)
    influx_username: str | None = None
    influx_password: SecretStr | None = None
    influx_token: SecretStr | None = None
    influx_batch_size: PositiveInt = 5000
    #: The control store (alerts, transitions, outbox, streaks, webhook endpoints and deliveries): empty → embedded
    #: SQLite files in ``data_dir`` (``alerts.db``); ``postgresql://user:password@host:port/database`` → that
    #: PostgreSQL database, shared by every instance of a fleet (issue 24, ``app.storage.control_db``).
    control_db: str = Field("", pattern=r"^(|postgres(ql)?://\S+)$", repr=False)

    artifact_path: Path | None = None  # None → the shipped models/artifacts/twin.json
    #: The gradient-boosting challenger, scored in shadow beside the twin (never drives alerts).
    challenger_enabled: bool = True
    challenger_path: Path | None = None  # None → the shipped models/artifacts/challenger.json
    #: A score is flagged ``challenger_disagrees`` when the two risks differ by at least this.
    challenger_disagreement: Annotated[float, Field(gt=0, le=1)] = 0.3
    #: Twin alert threshold. None → the artifact's (``operating_points.alert``: derived on development data
    #: from a stated target, see the model card); a site may override it.
    alert_threshold: Annotated[float, Field(gt=0, lt=1)] | None = None
    #: An active alert resolves when risk falls below this (hysteresis, so a risk hovering at the
    #: threshold does not raise a new alert every five minutes). None → ``models.twin.CLEAR_FRACTION`` (0.8)
    #: of the alert threshold.
    alert_clear_threshold: Annotated[float, Field(gt=0, lt=1)] | None = None
    #: The NEWS2 floor (RCP 2017, whatever the twin says): a ``news2`` alert when the aggregate reaches this...
    #: (at most 7, the chart's emergency threshold: a higher trigger would stay silent for a high-risk patient)
    news2_alert_aggregate: Annotated[int, Field(ge=1, le=7)] = 5
    #: ... or when any single parameter scores at least this (3 is the chart's single-parameter trigger).
    #: Both apply to charted observation sets (``POST /v1/observations``), at once; 7 or more is always an emergency.
    news2_alert_single_parameter: Annotated[int, Field(ge=1, le=3)] = 3
    #: The twin raises only after its risk was at or above its threshold in this many consecutive windows.
    twin_sustain_windows: Annotated[int, Field(ge=1, le=288)] = 3
    #: "Observations due" from the monitor: raised when the monitor-window NEWS2 meets the trigger below in every
    #: window (``obs_due_statistic``) of the last ``obs_due_after_min`` minutes; asks for a charted set.
    obs_due_statistic: Literal["every_window"] = "every_window"
    obs_due_after_min: Annotated[int, Field(ge=5, le=1440)] = 60
    #: Defaults chosen from the Pareto table of ``wardtwin evaluate alert-burden`` (reports/alert-burden): monitor
    #: NEWS2 ≥ 5 or a single 3 held for 60 min added 22.7 alerts per 100 patient-days for 0.04 of early warning
    #: above chance, so the shipped trigger is the RCP emergency level (≥ 7) held for an hour, and the single
    #: parameter trigger is off (4: no parameter scores 4). Charted sets always escalate at ≥ 5 or a single 3.
    obs_due_aggregate: Annotated[int, Field(ge=1, le=20)] = 7
    obs_due_single_parameter: Annotated[int, Field(ge=1, le=4)] = 4
    #: One interruption per patient episode (``app.alerts.rules``, ``Policy.fold``): a criteria, obs_due or twin rule
    #: that holds while the patient has an open, unacknowledged alert of a more urgent kind is recorded on that alert
    #: (reasons, a ``corroborated`` transition, no notification) instead of raising a second one; ``any``: folded
    #: into any open unacknowledged alert; ``off``: every kind raises on its own. Charted NEWS2 is never folded.
    #: Chosen from the fold study of ``wardtwin evaluate alert-burden`` (reports/alert-burden): 36 alerts beyond
    #: charted NEWS2 with the fold off, 21 with ``less_urgent``, 17 with ``any`` (which hides a rise in urgency), the
    #: same early warning and no first event missed against charted NEWS2 in all three.
    alert_fold: Literal["off", "less_urgent", "any"] = "less_urgent"
    #: Unacknowledged alerts escalate after this many (clock) minutes.
    alert_escalate_after_min: PositiveInt = 15
    #: An open alert resolves only after its rule has not held for this many minutes of window time (0: at the
    #: first cycle it does not hold). Keeps one alert open while a score flickers across its trigger.
    alert_clear_after_min: Annotated[int, Field(ge=0, le=720)] = 30
    #: An unacknowledged alert is notified again (event ``renotified``) every this many (clock) minutes; 0: never.
    alert_renotify_after_min: Annotated[int, Field(ge=0, le=1440)] = 10

    #: Alert WebSocket flow control: events in flight to one client before its acks are awaited; live events a
    #: client may leave unconfirmed before it is told and disconnected; a send blocked this long cuts it off;
    #: events per replay page.
    ws_max_unacked: Annotated[int, Field(ge=1, le=10_000)] = 256
    ws_max_behind: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    ws_send_timeout_s: Annotated[float, Field(gt=0, le=300)] = 5.0
    ws_replay_page: Annotated[int, Field(ge=1, le=10_000)] = 500
    #: Webhook delivery: attempts before a delivery is dead-lettered (the retry budget), exponential backoff
    #: ``base * 2**(attempt-1)`` capped at ``max``, with jitter (50–100 % of it); request timeout; idle poll.
    webhook_max_attempts: Annotated[int, Field(ge=1, le=100)] = 12
    webhook_backoff_base_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    webhook_backoff_max_s: Annotated[float, Field(gt=0, le=86_400)] = 4 * 3600.0
    webhook_timeout_s: Annotated[float, Field(gt=0, le=120)] = 15.0
    webhook_poll_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    #: Webhook targets that may be loopback, private, link-local or otherwise non-public (app.security.outbound):
    #: host names or IP literals, and networks. Empty: public addresses only. The InfluxDB URL is never allowed.
    webhook_allow_hosts: list[Annotated[str, Field(min_length=1, max_length=253)]] = []
    webhook_allow_cidrs: list[IPvAnyNetwork] = []
    #: Fernet keys sealing webhook secrets at rest, one a line, newest first (hazard H18, app.security.secrets_box).
    #: None → ``data_dir/secrets.key``, created 0600 on first use; every instance of a fleet needs the same file.
    secrets_key_file: Path | None = None

    #: Run the five-minute cycle on APScheduler (off: something else calls POST /v1/cycle).
    scheduler_enabled: bool = True
    #: A fleet instance (several ``wardtwin serve`` on one PostgreSQL control store, ``app.fleet``): its name in the
    #: leases (None: host-pid-random), how long a bucket lease lasts and how often it is renewed (two renewals may
    #: fail before a lease lapses). An instance that dies is taken over within lease + renew seconds.
    instance_id: str | None = Field(None, pattern=NAME_PATTERN.pattern)
    fleet_lease_s: Annotated[float, Field(ge=1, le=600)] = 15.0
    fleet_renew_s: Annotated[float, Field(gt=0, le=300)] = 5.0
    #: The cycle for a window end runs this many seconds after it, so late readings are in.
    cycle_grace_s: Annotated[float, Field(ge=0, le=240)] = 30.0
    #: Readings stamped further than this in the future (by the service clock) are rejected.
    max_future_skew_s: Annotated[float, Field(ge=0, le=3600)] = 300.0
    max_batch_readings: PositiveInt = 10_000
    #: A patient whose newest window is older than this is not scored (off the ward / monitor off).
    stale_after_min: PositiveInt = 60
    #: The ward board marks a bed stale (scores greyed, never shown as reassurance) when its newest data is older
    #: than this: the monitor's expected cadence (one window) plus the cycle's lag, with room for one missed window.
    board_stale_after_min: Annotated[int, Field(ge=5, le=1440)] = 15
    #: The ward's IANA time zone: the board shows every time in it.
    ward_time_zone: str = "Europe/London"

    #: A key with every role, for scripts and the demo (never stored; unset outside the demo).
    demo_key: SecretStr | None = None
    #: Browser origins allowed to open the alert WebSocket (``https://wardtwin.example``). The service's own origin
    #: counts without listing only when reached by IP address, ``localhost`` or a dotless name: list the public
    #: origin when browsers reach the service by a DNS name (DNS rebinding, issue 21: ``app.api.auth``).
    ws_allowed_origins: list[str] = []
    #: Origins allowed cross-origin requests (CORS); empty: closed.
    cors_origins: list[str] = []
    #: The service's public base URL (``https://wardtwin.example``): the absolute links of FHIR bundles and CDS Hooks
    #: cards are built from it, never from the request's ``Host`` (issue 21); unset: from ``Host``.
    public_base_url: str | None = None
    #: Reverse proxies whose X-Forwarded-For / -Proto are believed (addresses or networks); empty: none, the peer
    #: is the client (app.api.serving).
    trusted_proxies: list[Annotated[str, Field(min_length=1, max_length=64)]] = []
    #: When an audited request's row is committed (issue 21, finding 9; ``app.security.audit_writer``):
    #: ``before_answer`` (default) holds the answer until its row commits, a 503 instead if it fails (no read served
    #: unaudited); ``after_answer`` once the answer is sent (a failed commit refuses later requests, but its batch's
    #: reads were served; lower latency at low load).
    audit_commit: Literal["after_answer", "before_answer"] = "before_answer"
    #: Largest request body accepted (413 above it).
    max_body_bytes: PositiveInt = 4 * 1024 * 1024
    #: Slow clients (issue 21, H22), with no front proxy assumed: a request line and headers not all in within this
    #: many seconds of the connection opening (or of the next request's first byte) are answered 408 and the
    #: connection closed (``app.api.http_protocol``, for ``wardtwin serve`` and ``wardtwin demo``) ...
    http_header_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    #: ... and an admitted request whose body pauses longer than this between two chunks is answered 408 and its
    #: connection closed (``app.api.edge``).
    http_body_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    #: ... and a client leaving its response unread (the server's write buffer above its high-water mark this long
    #: without draining) has its connection reset (``app.api.http_protocol``).
    http_write_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    #: Per-key rate limit: average requests per second and burst.
    rate_limit_per_s: Annotated[float, Field(gt=0)] = 50.0
    rate_limit_burst: PositiveInt = 500
    #: Readings older than this many days (by the service clock) are refused.
    reading_horizon_days: Annotated[int, Field(ge=1, le=3650)] = 365
    #: HL7 v2 over MLLP (IHE PCD-01 from monitor gateways, ``app.interop.mllp``): the TCP port (None: off; 0: a free
    #: port) and the address it binds (MLLP carries no credential: bind it to the gateway network only).
    mllp_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    mllp_host: str = "127.0.0.1"
    #: Research releases (issue 25, app.research): the key of pseudonyms and date shifts (no default: exports are
    #: refused without it), and each data set's differential-privacy budget in the ledger (DATA_DIR/privacy.db).
    research_secret: SecretStr | None = Field(None, min_length=32)
    research_epsilon_budget: Annotated[float, Field(gt=0, le=100)] = 3.0
    research_delta_budget: Annotated[float, Field(ge=0, lt=1)] = 1e-6

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if None not in (self.alert_clear_threshold, self.alert_threshold) \
                and self.alert_clear_threshold > self.alert_threshold:  # type: ignore[operator]
            raise ValueError("alert_clear_threshold must not exceed alert_threshold")
        if self.demo_key is not None and len(self.demo_key.get_secret_value()) < 24:
            raise ValueError("demo_key must be at least 24 characters (a random token, not a word)")
        try:
            ZoneInfo(self.ward_time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"ward_time_zone {self.ward_time_zone!r} is not an IANA time zone "
                             "(e.g. Europe/London)") from None
        if self.fleet_renew_s * 2 > self.fleet_lease_s:
            raise ValueError("fleet_renew_s must be at most half of fleet_lease_s (a lease must survive a failed "
                             "renewal)")
        if self.influx_token and (self.influx_username or self.influx_password):
            raise ValueError("give either an InfluxDB token or a username/password, not both")
        return self

    @classmethod
    def explicit(cls, **values: Any) -> Settings:
        """``values`` over the defaults and nothing else: no ``WARDTWIN_*`` variable, no ``.env``. For the lab's tools
        that run a private service of their own (replay, the alert studies), so a stray variable cannot change their
        store or their numbers. Validated like any settings (the documented ``settings_customise_sources`` hook)."""

        class Explicit(cls):  # type: ignore[valid-type, misc]
            @classmethod
            def settings_customise_sources(cls, settings_cls: type[BaseSettings],  # type: ignore[override]
                                           init_settings: PydanticBaseSettingsSource,
                                           **_ignored: PydanticBaseSettingsSource
                                           ) -> tuple[PydanticBaseSettingsSource, ...]:
                return (init_settings,)

        return Explicit(**values)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "wardtwin.db"

    @property
    def alerts_path(self) -> Path:
        return self.data_dir / "alerts.db"

    @property
    def control_target(self) -> Path | str:
        """Where the alert store lives: ``control_db`` (a PostgreSQL URL) when set, else ``alerts.db``."""
        return self.control_db or self.alerts_path

    @property
    def access_path(self) -> Path:
        return self.data_dir / "access.db"

    @property
    def access_target(self) -> Path | str:
        """Where the keys and the audit trail live: ``control_db`` (a PostgreSQL URL) when set, else ``access.db``."""
        return self.control_db or self.access_path

    @property
    def spool_path(self) -> Path:
        return self.data_dir / "influx-spool.db"
