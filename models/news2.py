"""NEWS2, the Royal College of Physicians' National Early Warning Score 2 (2017), chart 1 and chart 4.

Bands (points; reference: ``shared/reference/news2.md``)::

    respiration rate /min   ≤8: 3 · 9–11: 1 · 12–20: 0 · 21–24: 2 · ≥25: 3
    SpO2 scale 1 %          ≤91: 3 · 92–93: 2 · 94–95: 1 · ≥96: 0
    SpO2 scale 2 %          ≤83: 3 · 84–85: 2 · 86–87: 1 · 88–92: 0 · ≥93 on air: 0
                            on oxygen: 93–94: 1 · 95–96: 2 · ≥97: 3
    air or oxygen           air: 0 · any supplemental oxygen: 2
    systolic BP mmHg        ≤90: 3 · 91–100: 2 · 101–110: 1 · 111–219: 0 · ≥220: 3
    pulse /min              ≤40: 3 · 41–50: 1 · 51–90: 0 · 91–110: 1 · 111–130: 2 · ≥131: 3
    consciousness           A: 0 · new confusion (C), V, P, U: 3
    temperature °C          ≤35.0: 3 · 35.1–36.0: 1 · 36.1–38.0: 0 · 38.1–39.0: 1 · ≥39.1: 2

Clinical response band (chart 4): aggregate ≥ 7 → ``"high"``; 5–6 → ``"medium"``; a 3 in any single
parameter with an aggregate below 5 → ``"low-medium"``; otherwise (0–4) → ``"low"``.

Clinical response and minimum observation frequency (chart 4, wording of ``shared/reference/news2.md``)::

    trigger                  risk        urgency            observations           response
    aggregate 0              low         routine            every 12 h             routine
    aggregate 1–4            low         ward-based         every 4–6 h            registered nurse assesses, ...
    3 in a single parameter  low-medium  urgent ward-based  every hour             registered nurse informs ...
    aggregate 5–6            medium      urgent             every hour             urgent review by a clinician ...
    aggregate ≥ 7            high        emergency          continuous monitoring  emergency assessment by ...

``RESPONSES`` holds each row's full wording. The single-parameter row applies only while the aggregate is
below 5 (5 or more is at least ``medium``). ``observe_within_min`` is the longest wait to the next observation
set the row allows (4–6 h → 360, the chart's upper bound; continuous → 0).

Rounding rule: NEWS2 is charted in whole numbers, temperature to 0.1 °C. Values are rounded half up
(93.5 % → 94 %, 90.5 mmHg → 91 mmHg, 38.05 °C → 38.1 °C) before banding, so a value between two bands
lands in the band of its charted value. An unobserved parameter scores 0 and marks the set ``partial``.
Out-of-range (``models.schema.PLAUSIBLE_RANGES``) or unknown values raise :class:`ObservationError`, a
``ValueError`` whose message starts with the field and whose ``field`` attribute names it (the API's 422 ``loc``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from models.schema import ACVPU_CODES, PLAUSIBLE_RANGES

PARAMETERS: Final[tuple[str, ...]] = ("rr", "spo2", "o2", "sbp", "hr", "acvpu", "temp")
BANDS: Final[tuple[str, ...]] = ("low", "low-medium", "medium", "high")
#: The highest aggregate the chart can give (every parameter at its worst: 3 + 3 + 2 + 3 + 3 + 3 + 3).
MAX_TOTAL: Final[int] = 20


class ObservationError(ValueError):
    """A value NEWS2 cannot score; ``field`` is the parameter's name (``"hr"``, ``"spo2_scale"``, ...)."""

    def __init__(self, field: str, msg: str) -> None:
        super().__init__(f"{field}: {msg}")
        self.field = field


@dataclass(frozen=True)
class ClinicalResponse:
    """One row of RCP 2017 chart 4: what a NEWS2 result asks of the ward."""

    trigger: str  # "0", "1-4", "single-3", "5-6", "7+"
    band: str  # clinical risk: one of BANDS
    urgency: str  # "routine", "ward-based", "urgent ward-based", "urgent", "emergency"
    monitoring: str  # minimum observation frequency, as the chart words it
    observe_within_min: int  # longest wait to the next observation set (0 = continuous monitoring)
    response: str  # the clinical response, as the chart words it


#: Chart 4, row by row (wording from ``shared/reference/news2.md``), keyed by trigger.
RESPONSES: Final[dict[str, ClinicalResponse]] = {r.trigger: r for r in (
    ClinicalResponse("0", "low", "routine", "every 12 h", 720, "routine"),
    ClinicalResponse("1-4", "low", "ward-based", "every 4–6 h", 360,
                     "registered nurse assesses, decides on escalation"),
    ClinicalResponse("single-3", "low-medium", "urgent ward-based", "every hour", 60,
                     "registered nurse informs the medical team"),
    ClinicalResponse("5-6", "medium", "urgent", "every hour", 60,
                     "urgent review by a clinician competent in acute illness"),
    ClinicalResponse("7+", "high", "emergency", "continuous monitoring", 0,
                     "emergency assessment by a critical-care-competent team, consider transfer to level 2/3 care"),
)}


def has_single_parameter_3(points: Mapping[str, int]) -> bool:
    """A 3 in any single parameter: the chart's key threshold for an urgent ward-based response."""
    return any(p == 3 for p in points.values())


def clinical_response(total: int, single_parameter_3: bool) -> ClinicalResponse:
    """The chart-4 row for an aggregate and whether any single parameter scores 3."""
    if isinstance(total, bool) or not isinstance(total, int | np.integer) or not 0 <= total <= MAX_TOTAL:
        raise ValueError(f"a NEWS2 aggregate is an integer 0–{MAX_TOTAL}, got {total!r}")
    if total >= 7:
        return RESPONSES["7+"]
    if total >= 5:
        return RESPONSES["5-6"]
    if single_parameter_3:
        return RESPONSES["single-3"]
    return RESPONSES["1-4"] if total >= 1 else RESPONSES["0"]


@dataclass(frozen=True)
class News2:
    points: dict[str, int]
    total: int
    band: str
    partial: bool

    @property
    def single_parameter_3(self) -> bool:
        """A 3 in any single parameter (the chart's key threshold for an urgent ward-based response)."""
        return has_single_parameter_3(self.points)

    @property
    def clinical_response(self) -> ClinicalResponse:
        return clinical_response(self.total, self.single_parameter_3)

    @property
    def response(self) -> str:
        """The RCP 2017 clinical response for this result (chart 4 wording)."""
        return self.clinical_response.response

    @property
    def monitoring(self) -> str:
        """The minimum observation frequency for this result (chart 4 wording)."""
        return self.clinical_response.monitoring

    @property
    def urgency(self) -> str:
        return self.clinical_response.urgency


def round_half_up(x: float, decimals: int = 0) -> float:
    """Charted value: half up, with a tiny tolerance for binary representation (38.05 → 38.1)."""
    f = 10.0**decimals
    return math.floor(x * f + 0.5 + 1e-9) / f


def rr_points(rr: float) -> int:
    r = round_half_up(rr)
    return 3 if r <= 8 else 1 if r <= 11 else 0 if r <= 20 else 2 if r <= 24 else 3


def spo2_points(spo2: float, *, scale: int = 1, on_oxygen: bool = False) -> int:
    s = round_half_up(spo2)
    if scale == 1:
        return 3 if s <= 91 else 2 if s <= 93 else 1 if s <= 95 else 0
    if s <= 83:
        return 3
    if s <= 85:
        return 2
    if s <= 87:
        return 1
    if s <= 92 or not on_oxygen:
        return 0
    return 1 if s <= 94 else 2 if s <= 96 else 3


def sbp_points(sbp: float) -> int:
    s = round_half_up(sbp)
    return 3 if s <= 90 else 2 if s <= 100 else 1 if s <= 110 else 0 if s <= 219 else 3


def hr_points(hr: float) -> int:
    h = round_half_up(hr)
    return 3 if h <= 40 else 1 if h <= 50 else 0 if h <= 90 else 1 if h <= 110 else 2 if h <= 130 else 3


def temp_points(temp: float) -> int:
    t = round_half_up(temp, 1)
    return 3 if t <= 35.0 else 1 if t <= 36.0 else 0 if t <= 38.0 else 1 if t <= 39.0 else 2


def band(total: int, points: dict[str, int]) -> str:
    if total >= 7:
        return "high"
    if total >= 5:
        return "medium"
    if has_single_parameter_3(points):
        return "low-medium"
    return "low"


def _check(field: str, value: Any, vital: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ObservationError(field, f"expected a number, got {value!r}")
    x = float(value)
    lo, hi = PLAUSIBLE_RANGES[vital]
    if math.isnan(x) or not lo <= x <= hi:
        raise ObservationError(field, f"{value!r} is outside the plausible range {lo:g}–{hi:g}")
    return x


def score(*, rr: float | None = None, spo2: float | None = None, spo2_scale: int = 1,
          on_oxygen: bool | None = None, sbp: float | None = None, hr: float | None = None,
          acvpu: str | None = None, temp: float | None = None) -> News2:
    """NEWS2 for one observation set; ``None`` = not observed (scores 0, ``partial``)."""
    if isinstance(spo2_scale, bool) or spo2_scale not in (1, 2):
        raise ObservationError("spo2_scale", f"must be 1 or 2, got {spo2_scale!r}")
    if on_oxygen is not None and not isinstance(on_oxygen, bool | np.bool_):
        raise ObservationError("on_oxygen", f"expected true/false, got {on_oxygen!r}")
    if acvpu is not None and (not isinstance(acvpu, str) or acvpu.strip().upper() not in ACVPU_CODES):
        raise ObservationError("acvpu", f"must be one of {', '.join(ACVPU_CODES)}, got {acvpu!r}")
    values = {"rr": _check("rr", rr, "rr"), "spo2": _check("spo2", spo2, "spo2"), "sbp": _check("sbp", sbp, "sbp"),
              "hr": _check("hr", hr, "hr"), "temp": _check("temp", temp, "temp")}
    oxygen = bool(on_oxygen) if on_oxygen is not None else False
    points = {
        "rr": 0 if values["rr"] is None else rr_points(values["rr"]),
        "spo2": 0 if values["spo2"] is None else spo2_points(values["spo2"], scale=spo2_scale, on_oxygen=oxygen),
        "o2": 0 if on_oxygen is None else (2 if oxygen else 0),
        "sbp": 0 if values["sbp"] is None else sbp_points(values["sbp"]),
        "hr": 0 if values["hr"] is None else hr_points(values["hr"]),
        "acvpu": 0 if acvpu is None else (0 if acvpu.strip().upper() == "A" else 3),
        "temp": 0 if values["temp"] is None else temp_points(values["temp"]),
    }
    partial = any(v is None for v in values.values()) or on_oxygen is None or acvpu is None
    total = sum(points.values())
    return News2(points=points, total=total, band=band(total, points), partial=partial)


def _opt(row: Any, key: str) -> float | None:
    v = row.get(key) if hasattr(row, "get") else getattr(row, key, None)
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


def from_window(row: Any) -> News2:
    """NEWS2 from one carried-forward window row (``o2 > 0`` = on oxygen; ``acvpu`` 0..4 → A,C,V,P,U).

    SpO2 scale 1 unless the row carries ``spo2_scale == 2`` (a patient with a prescribed 88–92 % target).

    Window means are rounded half up to the charted whole number (temperature to 0.1 °C). Values
    outside the plausible range raise ``ValueError`` (they cannot come out of ``models.windows``).
    """
    o2 = _opt(row, "o2")
    code = _opt(row, "acvpu")
    acvpu = None
    if code is not None:
        i = int(round_half_up(code))
        if not 0 <= i < len(ACVPU_CODES):
            raise ObservationError("acvpu", f"code {code!r} is not 0..4")
        acvpu = ACVPU_CODES[i]
    scale = _opt(row, "spo2_scale")
    return score(rr=_opt(row, "rr_mean"), spo2=_opt(row, "spo2_mean"), on_oxygen=None if o2 is None else o2 > 0,
                 spo2_scale=2 if scale == 2 else 1,
                 sbp=_opt(row, "sbp"), hr=_opt(row, "hr_mean"), acvpu=acvpu, temp=_opt(row, "temp"))


def _band_points(x: np.ndarray, edges: list[float], pts: list[int]) -> np.ndarray:
    """Points for charted values ``x`` given upper-inclusive band edges; NaN → 0."""
    idx = np.searchsorted(np.asarray(edges), x, side="left")
    out = np.asarray(pts)[np.minimum(idx, len(pts) - 1)]
    return np.where(np.isnan(x), 0, out).astype("int64")


def _charted(x: np.ndarray, decimals: int = 0) -> np.ndarray:
    f = 10.0**decimals
    return np.floor(x * f + 0.5 + 1e-9) / f


def _spo2_points(spo2: np.ndarray, o2: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    scale1 = _band_points(spo2, [91, 93, 95], [3, 2, 1, 0])
    if scale is None:
        return scale1
    on_oxygen = np.nan_to_num(o2, nan=0.0) > 0
    scale2_air = _band_points(spo2, [83, 85, 87], [3, 2, 1, 0])
    scale2_oxygen = np.where(spo2 >= 93, _band_points(spo2, [94, 96], [1, 2, 3]), scale2_air)
    scale2 = np.where(on_oxygen, scale2_oxygen, scale2_air)
    return np.where(scale == 2, scale2, scale1).astype("int64")


def from_windows(windows: pd.DataFrame) -> pd.DataFrame:
    """Vectorised :func:`from_window` over many windows (per-row ``spo2_scale`` when the column exists).

    Returns, per input row (same order): ``patient_id``, ``window_end``, ``news2`` (total), ``partial``,
    ``band`` and one ``news2_<parameter>`` points column per parameter.
    """
    rr = _charted(windows["rr_mean"].to_numpy(float))
    spo2 = _charted(windows["spo2_mean"].to_numpy(float))
    sbp = _charted(windows["sbp"].to_numpy(float))
    hr = _charted(windows["hr_mean"].to_numpy(float))
    temp = _charted(windows["temp"].to_numpy(float), 1)
    o2 = windows["o2"].to_numpy(float)
    acvpu = windows["acvpu"].to_numpy(float)
    points = {
        "rr": _band_points(rr, [8, 11, 20, 24], [3, 1, 0, 2, 3]),
        "spo2": _spo2_points(spo2, o2, windows["spo2_scale"].to_numpy(float) if "spo2_scale" in windows else None),
        "o2": np.where(np.isnan(o2), 0, np.where(o2 > 0, 2, 0)).astype("int64"),
        "sbp": _band_points(sbp, [90, 100, 110, 219], [3, 2, 1, 0, 3]),
        "hr": _band_points(hr, [40, 50, 90, 110, 130], [3, 1, 0, 1, 2, 3]),
        "acvpu": np.where(np.isnan(acvpu), 0, np.where(_charted(acvpu) >= 1, 3, 0)).astype("int64"),
        "temp": _band_points(temp, [35.0 + 1e-9, 36.0 + 1e-9, 38.0 + 1e-9, 39.0 + 1e-9], [3, 1, 0, 1, 2]),
    }
    total = sum(points.values())
    any3 = np.zeros(len(windows), dtype=bool)
    for p in points.values():
        any3 |= p == 3
    bands = np.where(total >= 7, "high", np.where(total >= 5, "medium", np.where(any3, "low-medium", "low")))
    partial = np.zeros(len(windows), dtype=bool)
    for arr in (rr, spo2, sbp, hr, temp, o2, acvpu):
        partial |= np.isnan(arr)
    out = pd.DataFrame({"patient_id": windows["patient_id"].to_numpy()})
    if "start" in windows:
        out["window_end"] = (pd.to_datetime(windows["start"], utc=True) + pd.Timedelta(minutes=5)).to_numpy()
    out["news2"] = total.astype("int64")
    out["partial"] = partial
    out["band"] = bands
    for k in PARAMETERS:
        out[f"news2_{k}"] = points[k]
    return out


@dataclass(frozen=True)
class News2Summary:
    """The NEWS2 a score carries: the result with its chart-4 row (clinical response, monitoring frequency).

    ``band``, ``single_parameter_3`` and the chart-4 fields follow from ``total`` and ``points``; :meth:`of` and
    :meth:`from_stored` are the only ways in, so they never disagree. ``to_dict`` is the stored form.
    """

    total: int
    band: str
    points: dict[str, int]
    partial: bool
    single_parameter_3: bool
    urgency: str
    response: str
    monitoring: str
    observe_within_min: int

    @classmethod
    def of(cls, result: News2) -> News2Summary:
        return cls._make(result.total, dict(result.points), result.partial)

    @classmethod
    def _make(cls, total: int, points: dict[str, int], partial: bool) -> News2Summary:
        row = clinical_response(total, has_single_parameter_3(points))
        return cls(total=total, band=row.band, points=points, partial=partial,
                   single_parameter_3=has_single_parameter_3(points), urgency=row.urgency, response=row.response,
                   monitoring=row.monitoring, observe_within_min=row.observe_within_min)

    @classmethod
    def from_stored(cls, obj: Mapping[str, Any] | News2Summary | None) -> News2Summary | None:
        """The one reader of a stored summary, tolerant of rows from every version: ``None`` for a score stored
        without NEWS2 (``None`` or ``{}``); a missing total is 0, missing points none, and the fields derived from
        them (band, chart-4 row) are derived again rather than read."""
        if obj is None or isinstance(obj, News2Summary):
            return obj
        if not obj:
            return None
        points = {str(k): int(v) for k, v in (obj.get("points") or {}).items()}
        return cls._make(int(obj.get("total") or 0), points, bool(obj.get("partial")))

    def to_dict(self) -> dict[str, Any]:
        """The stored (and API) form."""
        return {"total": self.total, "band": self.band, "points": dict(self.points), "partial": self.partial,
                "single_parameter_3": self.single_parameter_3, "urgency": self.urgency, "response": self.response,
                "monitoring": self.monitoring, "observe_within_min": self.observe_within_min}


def summary(row: Any) -> News2Summary:
    """:class:`News2Summary` of one carried-forward window row (:func:`from_window`)."""
    return News2Summary.of(from_window(row))


def summaries(rows: pd.DataFrame) -> list[News2Summary]:
    """:func:`summary` of many window rows at once (the points vectorised by :func:`from_windows`, each distinct
    result described once): the same summaries, in row order."""
    table = from_windows(rows)
    points = table[[f"news2_{k}" for k in PARAMETERS]].to_numpy(dtype="int64").tolist()
    described: dict[tuple, News2Summary] = {}
    out = []
    for row_points, partial in zip(points, table["partial"].tolist(), strict=True):
        key = (*row_points, partial)
        found = described.get(key)
        if found is None:
            found = described[key] = News2Summary._make(sum(row_points), dict(zip(PARAMETERS, row_points,
                                                                                 strict=True)), bool(partial))
        out.append(found)
    return out


__all__ = ["BANDS", "MAX_TOTAL", "PARAMETERS", "RESPONSES", "ClinicalResponse", "News2", "News2Summary",
           "ObservationError", "band", "clinical_response", "from_window", "from_windows", "round_half_up", "score",
           "summaries", "summary"]
