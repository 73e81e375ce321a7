"""The one place configuration is read: ``WARDTWIN_*`` environment variables (or ``.env``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AnyHttpUrl, Field, PositiveInt, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    news2_alert_single_parameter: Annotated[int, Field(ge=1, le=3)] = 3
    #: Unacknowledged alerts escalate after this many (clock) minutes.
    alert_escalate_after_min: PositiveInt = 15
    #: An open alert resolves only after its rule has not held for this many minutes of window time (0: at the
    #: first cycle it does not hold). Keeps one alert open while a score flickers across its trigger.
    alert_clear_after_min: Annotated[int, Field(ge=0, le=720)] = 30

    #: Run the five-minute cycle on APScheduler (off: something else calls POST /v1/cycle).
    scheduler_enabled: bool = True
    #: The cycle for a window end runs this many seconds after it, so late readings are in.
    cycle_grace_s: Annotated[float, Field(ge=0, le=240)] = 30.0
    #: Readings stamped further than this in the future (by the service clock) are rejected.
    max_future_skew_s: Annotated[float, Field(ge=0, le=3600)] = 300.0
    max_batch_readings: PositiveInt = 10_000
    #: A patient whose newest window is older than this is not scored (off the ward / monitor off).
    stale_after_min: PositiveInt = 60

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if None not in (self.alert_clear_threshold, self.alert_threshold) \
                and self.alert_clear_threshold > self.alert_threshold:  # type: ignore[operator]
            raise ValueError("alert_clear_threshold must not exceed alert_threshold")
        if self.influx_token and (self.influx_username or self.influx_password):
            raise ValueError("give either an InfluxDB token or a username/password, not both")
        return self

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "wardtwin.db"

    @property
    def alerts_path(self) -> Path:
        return self.data_dir / "alerts.db"

    @property
    def spool_path(self) -> Path:
        return self.data_dir / "influx-spool.db"
