"""FHIR checks for the tests: validation with ``fhir.resources`` (R4B, the R4-compatible release the package ships:
fhir.resources 7+ dropped 4.0.1 itself) and the fixed values of the published R4 vital-signs profiles
(``tests/fixtures/interop/fhir-r4``, from the FHIR 4.0.1 specification, CC0), which the model classes do not check."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

PROFILES = Path(__file__).resolve().parents[1] / "fixtures" / "interop" / "fhir-r4"
PROFILE_PREFIX = "http://hl7.org/fhir/StructureDefinition/"


def validate(resource: dict[str, Any]) -> Any:
    """The resource parsed by its ``fhir.resources`` model (raises on any structural error); a Bundle's entries and
    every vital-signs Observation's profile are checked too."""
    model = get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    if resource["resourceType"] == "Bundle":
        for entry in resource.get("entry", []):
            validate(entry["resource"])
    for profile in resource.get("meta", {}).get("profile", []):
        check_profile(resource, profile.removeprefix(PROFILE_PREFIX))
    return model


@cache
def _fixed(profile: str) -> list[tuple[str, str, str]]:
    """The profile's fixed values as (element id, "system" | "code", value)."""
    definition = json.loads((PROFILES / f"{profile}.profile.json").read_text())
    out = []
    for element in definition["snapshot"]["element"]:
        for key in ("fixedUri", "fixedCode"):
            if key in element:
                out.append((element["id"], element["id"].rsplit(".", 1)[1], element[key]))
    return out


def _codings(concept: dict[str, Any]) -> list[dict[str, Any]]:
    return concept.get("coding", []) if concept else []


def check_profile(resource: dict[str, Any], profile: str) -> None:
    """Every fixed system/code of the profile present where it puts it, and the elements it requires (R4 vital
    signs: status, category, code, subject, effective[x], a value or data-absent reason)."""
    assert resource["status"] in ("registered", "preliminary", "final", "amended"), resource["status"]
    assert "subject" in resource and ("effectiveDateTime" in resource or "effectivePeriod" in resource)
    if profile == "bp":  # the panel's values are its components
        assert "component" in resource and "valueQuantity" not in resource
    else:
        assert "valueQuantity" in resource or "dataAbsentReason" in resource
    fixed: dict[str, dict[str, str]] = {}
    for element_id, leaf, value in _fixed(profile):
        fixed.setdefault(element_id.rsplit(".", 1)[0], {})[leaf] = value
    for parent, want in fixed.items():
        if parent.startswith("Observation.category"):
            assert any(all(c.get(k) == v for k, v in want.items()) for cat in resource["category"]
                       for c in _codings(cat)), (profile, parent, want)
        elif parent.startswith("Observation.code.coding"):
            assert any(all(c.get(k) == v for k, v in want.items()) for c in _codings(resource["code"])), \
                (profile, parent, want)
        elif parent.startswith("Observation.value[x]"):
            assert all(resource["valueQuantity"].get(k) == v for k, v in want.items()), (profile, parent, want)
        elif parent.startswith("Observation.component:"):
            slice_name = parent.split(":")[1].split(".")[0]
            components = _slice_components(resource, profile, slice_name)
            assert components, (profile, slice_name)
            if ".value[x]" in parent:
                assert all(c["valueQuantity"].get(k) == v for c in components if "valueQuantity" in c
                           for k, v in want.items()), (profile, parent, want)


def _slice_components(resource: dict[str, Any], profile: str, slice_name: str) -> list[dict[str, Any]]:
    """The components of ``resource`` that fall in the profile's component slice ``slice_name`` (by its code)."""
    codes = {value for element_id, leaf, value in _fixed(profile)
             if element_id.startswith(f"Observation.component:{slice_name}.code") and leaf == "code"}
    return [c for c in resource.get("component", []) if any(x.get("code") in codes for x in _codings(c["code"]))]
