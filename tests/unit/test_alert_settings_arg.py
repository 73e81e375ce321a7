"""``--alert-settings`` of the alert studies: only the alert policy's settings, validated by ``Settings``."""

import pytest
from pydantic import ValidationError

from app.settings import Settings
from lab.alert_burden import ALERT_POLICY_SETTINGS, alert_settings_arg


def test_pairs_of_the_alert_policy_are_read() -> None:
    assert alert_settings_arg("obs_due_aggregate=5, obs_due_single_parameter=3") == {
        "obs_due_aggregate": "5", "obs_due_single_parameter": "3"}
    assert alert_settings_arg("") == {}


@pytest.mark.parametrize("text", ["data_dir=/tmp", "demo_key=x", "obs_due_aggregate", "=5"])
def test_anything_else_is_refused_naming_what_is_allowed(text: str) -> None:
    with pytest.raises(ValueError, match="expected NAME=VALUE with NAME one of alert_threshold"):
        alert_settings_arg(text)


def test_every_listed_name_is_a_setting_and_values_are_validated_as_settings() -> None:
    assert set(ALERT_POLICY_SETTINGS) <= set(Settings.model_fields)
    assert Settings.explicit(**alert_settings_arg("obs_due_aggregate=5")).obs_due_aggregate == 5
    with pytest.raises(ValidationError):
        Settings.explicit(**alert_settings_arg("obs_due_aggregate=99"))
