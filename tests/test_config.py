"""Config validation: valid files load; each broken one is refused naming the key and reason."""

from __future__ import annotations

import copy
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.base.safeyaml import RefusedYaml, load_yaml
from exporter.config.errors import MAX_ERROR_LINES
from exporter.config.model import Config, ConfigError, load_config, parse_config, shard_of
from tests.conftest import INV_A, INV_B, ORG, USER, minimal_config, run_cli, to_config
from tests.project import ROOT


def _with(path: str, value: Any) -> dict[str, Any]:
    """minimal_config with the value at a dotted path (list indexes as numbers) replaced."""
    raw = copy.deepcopy(minimal_config())
    node: Any = raw
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    last = parts[-1]
    if value is _DELETE:
        del node[int(last) if last.isdigit() else last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return raw


_DELETE = object()


def _laughs(levels: int = 9) -> str:
    """The billion laughs: nine levels of nine aliases, 9**9 strings from 400 bytes."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, levels):
        lines.append(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


DUPLICATE_KEY = """\
podero:
  base_url: https://podero.invalid
  auth: {client_id: cid, client_secret: s}
  base_url: https://elsewhere.invalid
inverters: []
"""

BROKEN: list[tuple[str, Any, str]] = [
    # (id, config text or dict, the expected error line)
    ("yaml-syntax", "podero: {base_url: [}\n", "YAML syntax error at line 1"),
    ("top-level-list", "- a\n- b\n", "the top level must be a mapping"),
    ("empty-file", "", "the file is empty"),
    ("unknown-key", _with("podero.base_ulr", "https://x"), "podero.base_ulr: unknown key"),
    (
        "unknown-nested-key",
        _with("poll.intervall_seconds", 5),
        "poll.intervall_seconds: unknown key",
    ),
    (
        "missing-podero",
        {"inverters": minimal_config()["inverters"]},
        "podero: required key is missing",
    ),
    (
        "missing-client-id",
        _with("podero.auth.client_id", _DELETE),
        "podero.auth: client_id is required for grant_type client_credentials",
    ),
    (
        "missing-secret",
        _with("podero.auth.client_secret", _DELETE),
        "podero.auth: client_secret or client_secret_file is required",
    ),
    (
        "password-grant-no-password",
        _with("podero.auth", {"grant_type": "password", "username": "u"}),
        "podero.auth: password or password_file is required for grant_type password",
    ),
    (
        "unknown-grant",
        _with("podero.auth.grant_type", "implicit"),
        "podero.auth.grant_type: 'implicit' is not one of 'client_credentials' or 'password'",
    ),
    (
        "ftp-base-url",
        _with("podero.base_url", "ftp://podero.com"),
        "podero.base_url: scheme 'ftp' is not supported (use https or http)",
    ),
    (
        "not-a-url",
        _with("podero.base_url", "podero.com"),
        "podero.base_url: 'podero.com' is not a URL (expected https://host)",
    ),
    (
        "bad-uuid",
        _with("inverters.1.inverter_id", "abc"),
        "inverters[1].inverter_id: 'abc' is not a UUID",
    ),
    ("uuid-wrong-type", _with("inverters.0.org_id", 12), "inverters[0].org_id: 12 is not a UUID"),
    (
        "duplicate-inverter",
        _with("inverters.1.inverter_id", INV_A),
        f"inverters[1].inverter_id: {INV_A} duplicates inverters[0]",
    ),
    (
        "duplicate-name",
        _with("inverters.1.name", "a"),
        "inverters[1].name: 'a' duplicates inverters[0]",
    ),
    (
        "zero-interval",
        _with("poll.interval_seconds", 0),
        "poll.interval_seconds: must be at least 1, got 0",
    ),
    (
        "negative-lookback",
        _with("poll.lookback_seconds", -5),
        "poll.lookback_seconds: must be greater than 0, got -5",
    ),
    (
        "unknown-resolution",
        _with("poll.resolution", "5MIN"),
        "poll.resolution: '5MIN' is not one of '15MIN', '1HOUR', '1DAY', '1WEEK' or '1MONTH'",
    ),
    (
        "wrong-type-timeout",
        _with("podero.timeout_seconds", "fast"),
        "podero.timeout_seconds: input should be a valid number, unable to parse string as a "
        "number, got str",
    ),
    (
        "wrong-type-concurrency",
        _with("podero.max_concurrency", [4]),
        "podero.max_concurrency: input should be a valid integer, got list",
    ),
    (
        "concurrency-too-high",
        _with("podero.max_concurrency", 10_000),
        "podero.max_concurrency: must be at most 256, got 10000",
    ),
    (
        "retry-attempts-zero",
        _with("podero.retry.attempts", 0),
        "podero.retry.attempts: must be at least 1, got 0",
    ),
    (
        "no-inverters",
        _with("inverters", []),
        "inverters: must not be empty (or configure discovery)",
    ),
    (
        "discovery-bad-org",
        _with("discovery", {"org_ids": ["nope"]}),
        "discovery.org_ids: 'nope' is not a UUID",
    ),
    (
        "discovery-no-orgs",
        _with("discovery", {"org_ids": []}),
        "discovery.org_ids: must not be empty",
    ),
    (
        "discovery-refresh-too-fast",
        _with("discovery", {"org_ids": [ORG], "refresh_interval_seconds": 5}),
        "discovery.refresh_interval_seconds: must be at least 60, got 5",
    ),
    (
        "inverters-not-list",
        _with("inverters", {"a": 1}),
        "inverters: input should be a valid list, got dict",
    ),
    (
        "reserved-label",
        _with("inverters.0.labels", {"name": "x"}),
        "inverters[0].labels: 'name' is set by the exporter on podero_device_info and cannot "
        "be a custom label",
    ),
    (
        "bad-label-name",
        _with("inverters.0.labels", {"site-name": "x"}),
        "inverters[0].labels: 'site-name' is not a valid Prometheus label name",
    ),
    (
        "threshold-over-100",
        _with("thresholds", {"battery_low_percent": 150}),
        "thresholds.battery_low_percent: must be at most 100, got 150",
    ),
    (
        "shard-index-out-of-range",
        _with("shard", {"count": 2, "index": 2}),
        "shard: index 2 must be below count 2",
    ),
    (
        "both-secret-and-file",
        _with("podero.auth.client_secret_file", "/x"),
        "podero.auth: set either client_secret or client_secret_file, not both",
    ),
    ("duplicate-key", DUPLICATE_KEY, "line 4: duplicate key 'base_url' (first at line 2)"),
    ("alias-bomb", _laughs(), "aliases expand the config beyond"),
    ("recursive-alias", "podero: &p {auth: *p}\n", "an alias refers to a node that contains it"),
    (
        "resolution-1hour",
        _with("poll.resolution", "1HOUR"),
        "poll.resolution: '1HOUR' is not supported, use '15MIN': a coarser bucket is still "
        "growing when polled",
    ),
    ("resolution-1day", _with("poll.resolution", "1DAY"), "poll.resolution: '1DAY' is not"),
    (
        "call-shorter-than-one-exchange",
        _with("podero.call_timeout_seconds", 5),
        "podero.call_timeout_seconds: must be at least podero.timeout_seconds (10), got 5",
    ),
    (
        "response-limit-too-small",
        _with("podero.max_response_bytes", 1000),
        "podero.max_response_bytes: must be at least 65536, got 1000",
    ),
    (
        "threshold-of-another-kind",
        _with("inverters.1.thresholds", {"hot_water_low_celsius": 40}),
        "inverters[1]: thresholds.hot_water_low_celsius applies to kind heat_pump, "
        "this entry is kind inverter",
    ),
    (
        "vehicle-threshold-on-a-heat-pump",
        _with(
            "inverters.1",
            {
                **minimal_config()["inverters"][1],
                "kind": "heat_pump",
                "thresholds": {"vehicle_charged_by": "07:00"},
            },
        ),
        "inverters[1]: thresholds.vehicle_charged_by applies to kind electric_vehicle, "
        "this entry is kind heat_pump",
    ),
    (
        "unquoted-time-of-day",
        "podero: {base_url: 'https://p.invalid', auth: {client_id: c, client_secret: s}}\n"
        "discovery: {org_ids: ['0b1e6e1c-58a7-4a3e-9a52-2f5b0c1d4e01']}\n"
        "thresholds: {vehicle_charged_by: 7:30}\n",
        "thresholds.vehicle_charged_by: 450 is a number: write the time of day in quotes, "
        "like '07:30'",
    ),
    (
        "time-of-day-out-of-range",
        _with("thresholds.vehicle_charged_by", "24:00"),
        "thresholds.vehicle_charged_by: '24:00' is not a time of day like '07:00' (00:00 to 23:59)",
    ),
    (
        "vehicle-level-zero",
        _with("thresholds.vehicle_charged_percent", 0),
        "thresholds.vehicle_charged_percent: must be greater than 0, got 0",
    ),
    (
        "hot-water-absurd",
        _with("thresholds.hot_water_low_celsius", 1e9),
        "thresholds.hot_water_low_celsius: must be at most 150, got 1000000000.0",
    ),
    (
        "vehicle-level-without-a-time",
        _with("thresholds.vehicle_charged_percent", 80),
        "thresholds: thresholds.vehicle_charged_percent and thresholds.vehicle_charged_by "
        "go together: set both or neither",
    ),
    (
        "vehicle-time-without-a-level-on-an-entry",
        _with(
            "inverters.1",
            {
                **minimal_config()["inverters"][1],
                "kind": "electric_vehicle",
                "thresholds": {"vehicle_charged_by": "05:00"},
            },
        ),
        "inverters[1]: thresholds.vehicle_charged_percent and thresholds.vehicle_charged_by "
        "go together",
    ),
    (
        "unknown-timezone",
        _with("timezone", "Europe/Viena"),
        "timezone: 'Europe/Viena' is not a time zone name of the IANA database",
    ),
    (
        "timezone-path",
        _with("timezone", "../../etc/passwd"),
        "timezone: '../../etc/passwd' is not a time zone name",
    ),
]


@pytest.mark.parametrize(("case", "raw", "expected"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_config_is_refused_with_key_and_reason(case: str, raw: Any, expected: str) -> None:
    text = raw if isinstance(raw, str) else yaml.safe_dump(raw)
    with pytest.raises(ConfigError) as info:
        parse_config(text, {}, source="config.yaml")
    message = str(info.value)
    assert "\n" not in message, message
    assert expected in message


def test_there_are_at_least_twenty_broken_cases() -> None:
    assert len(BROKEN) >= 20


def test_duplicate_keys_are_refused_at_any_depth_with_both_lines() -> None:
    text = yaml.safe_dump(minimal_config(), sort_keys=False)
    text = text.replace("  name: b\n", "  name: b\n  name: c\n")
    with pytest.raises(ConfigError) as info:
        parse_config(text, {}, source="c.yaml")
    line = text.splitlines().index("  name: c") + 1
    assert (
        str(info.value) == f"c.yaml: line {line}: duplicate key 'name' (first at line {line - 1})"
    )


def test_anchors_aliases_and_merges_within_reason_are_fine() -> None:
    inverters = "\n".join(
        f"- {{org_id: {ORG}, user_id: {USER}, inverter_id: {uuid.UUID(int=n)}, labels: *site}}"
        for n in range(1, 2001)
    )
    text = (
        "site: &site {site: vienna, region: east}\n"
        "base: &base {base_url: 'https://podero.invalid', timeout_seconds: 5}\n"
        "podero:\n  <<: *base\n  timeout_seconds: 7\n  auth: {client_id: c, client_secret: s}\n"
        f"inverters:\n{inverters}\n"
    )
    raw = load_yaml(text)
    del raw["site"], raw["base"]
    config = Config.model_validate(raw)
    assert config.podero.timeout_seconds == 7  # the explicit key wins over the merged one
    assert len(config.inverters) == 2000
    assert config.inverters[1999].labels == {"site": "vienna", "region": "east"}


def test_the_alias_budget_grows_with_the_text() -> None:
    assert load_yaml(_laughs(3))["l2"][0][0][0] == "lol"  # 729 laughs: within the floor
    with pytest.raises(RefusedYaml, match=r"beyond 1\d{4} nodes"):  # 10,000 + 10 per char
        load_yaml(_laughs(6))  # 9**6 = 531441 from 300 bytes


def test_an_env_var_that_is_not_utf8_is_refused() -> None:
    raw = minimal_config()
    raw["inverters"][0]["name"] = "${SITE}"
    with pytest.raises(ConfigError, match=r"^inverters\[0\]\.name: environment variable SITE is"):
        parse_config(yaml.safe_dump(raw), {"SITE": "caf\udce9"})  # os.environ's view of b"\xe9"


def test_a_secret_file_with_bom_and_crlf_gives_the_bare_secret(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"\xef\xbb\xbf  s3cr3t \r\n")
    raw = minimal_config()
    del raw["podero"]["auth"]["client_secret"]
    raw["podero"]["auth"]["client_secret_file"] = str(secret)
    config = parse_config(yaml.safe_dump(raw), {})
    assert config.podero.auth.secret().get_secret_value() == "s3cr3t"


def test_a_huge_secret_file_is_refused_without_reading_it_all() -> None:
    raw = minimal_config()
    del raw["podero"]["auth"]["client_secret"]
    raw["podero"]["auth"]["client_secret_file"] = "/dev/zero"  # endless
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_dump(raw), {})
    # Refused for what it is, before it is opened (issue 20); an over-size regular file is
    # refused by its size (tests/test_files.py).
    assert str(info.value) == (
        "podero.auth.client_secret_file: '/dev/zero' is a character device, not a regular file"
    )


def test_unset_env_var_names_the_variable_and_key() -> None:
    raw = minimal_config()
    raw["podero"]["auth"]["client_id"] = "${PODERO_CLIENT_ID}"
    with pytest.raises(
        ConfigError,
        match=r"^podero\.auth\.client_id: environment variable "
        r"PODERO_CLIENT_ID is not set$",
    ):
        parse_config(yaml.safe_dump(raw), {})


def test_env_vars_are_substituted_in_any_string() -> None:
    raw = minimal_config()
    raw["podero"]["auth"]["client_id"] = "${CID}"
    raw["inverters"][0]["name"] = "roof-${SITE}"
    config = parse_config(yaml.safe_dump(raw), {"CID": "abc", "SITE": "vienna"})
    assert config.podero.auth.client_id == "abc"
    assert config.inverters[0].name == "roof-vienna"


def test_secret_file_is_read_and_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t\n")
    raw = minimal_config()
    del raw["podero"]["auth"]["client_secret"]
    raw["podero"]["auth"]["client_secret_file"] = str(secret)
    config = parse_config(yaml.safe_dump(raw), {})
    assert config.podero.auth.secret().get_secret_value() == "s3cr3t"


def test_missing_secret_file_is_refused(tmp_path: Path) -> None:
    raw = minimal_config()
    del raw["podero"]["auth"]["client_secret"]
    raw["podero"]["auth"]["client_secret_file"] = str(tmp_path / "nope")
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_dump(raw), {})
    assert str(info.value) == (
        f"podero.auth.client_secret_file: cannot read '{tmp_path / 'nope'}': "
        "No such file or directory"
    )


def test_secret_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    raw = minimal_config()
    del raw["podero"]["auth"]["client_secret"]
    raw["podero"]["auth"]["client_secret_file"] = str(tmp_path)
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_dump(raw), {})
    assert str(info.value) == (
        f"podero.auth.client_secret_file: '{tmp_path}' is a directory, not a regular file"
    )


def test_empty_secret_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("\n")
    raw = minimal_config()
    raw["podero"]["auth"] = {
        "grant_type": "password",
        "username": "u",
        "password_file": str(secret),
    }
    with pytest.raises(ConfigError, match=r"^podero\.auth\.password_file: .* is empty$"):
        parse_config(yaml.safe_dump(raw), {})


def test_secrets_never_appear_in_errors_or_repr() -> None:
    raw = minimal_config()
    raw["podero"]["auth"]["client_secret"] = "CANARY-SECRET"
    raw["podero"]["timeout_seconds"] = "x"
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_dump(raw), {})
    assert "CANARY-SECRET" not in str(info.value)
    raw["podero"]["timeout_seconds"] = 5
    config = parse_config(yaml.safe_dump(raw), {})
    assert "CANARY-SECRET" not in repr(config)
    assert "CANARY-SECRET" not in config.summary()


def test_defaults_and_token_url() -> None:
    raw = minimal_config()
    config = parse_config(yaml.safe_dump(raw), {})
    assert config.poll.interval_seconds == 60
    assert config.poll.resolution_seconds == 900
    assert config.podero.token_url == "https://podero.invalid/oauth2/token/"
    raw["podero"]["auth"] = {"grant_type": "password", "username": "u", "password": "p"}
    config = parse_config(yaml.safe_dump(raw), {})
    assert config.podero.token_url == "https://podero.invalid/api/partners/v2.0/auth/token"
    raw["podero"]["auth"]["token_url"] = "https://auth.example/token"
    assert parse_config(yaml.safe_dump(raw), {}).podero.token_url == "https://auth.example/token"


def test_uuids_are_normalised() -> None:
    raw = minimal_config()
    raw["inverters"][0]["inverter_id"] = INV_A.upper()
    config = parse_config(yaml.safe_dump(raw), {})
    assert config.inverters[0].device_id == INV_A


def test_example_config_passes_check_with_its_env_vars(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("example-secret\n")
    text = (ROOT / "config.example.yaml").read_text()
    text = text.replace("/run/secrets/podero_client_secret", str(secret))
    path = tmp_path / "config.yaml"
    path.write_text(text)
    config = load_config(path, {"PODERO_CLIENT_ID": "example-client"})
    assert config.podero.auth.client_id == "example-client"
    assert len(config.inverters) >= 1


def test_shards_are_stable_disjoint_and_covering() -> None:
    ids = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(2000)]
    for count in (1, 2, 3, 7):
        owners = [shard_of(i, count) for i in ids]
        assert owners == [shard_of(i, count) for i in ids]  # stable
        counts = [owners.count(k) for k in range(count)]
        assert sum(counts) == len(ids)  # each id in exactly one shard
        assert min(counts) > len(ids) / count * 0.8  # and the shares are even


def test_config_check_cli_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(minimal_config()))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_with("inverters.0.user_id", "nope")))
    ok = run_cli("--config.file", str(good), "--config.check")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("config ok: 2 inverters")
    refused = run_cli("--config.file", str(bad), "--config.check")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "podero-exporter: config error: inverters[0].user_id: 'nope' is not a UUID"
    )
    assert "Traceback" not in refused.stderr
    _ = (ORG, USER, INV_B)


def test_config_check_says_discovery_is_on() -> None:
    # "0 inverters" alone reads as a config that polls nothing.
    org = "0b1e6e1c-58a7-4a3e-9a52-2f5b0c1d4e01"
    discovering = to_config(minimal_config(inverters=[], discovery={"org_ids": [org, ORG]}))
    assert discovering.summary().startswith(
        "config ok: 0 inverters and discovery of 2 organizations, base_url https://podero.invalid"
    )
    assert to_config(minimal_config()).summary().startswith("config ok: 2 inverters, base_url")


def test_shard_flags_override_the_config(tmp_path: Path) -> None:
    raw = minimal_config()
    raw["inverters"] = [
        {
            "org_id": ORG,
            "user_id": f"{i // 2:08x}-1111-4000-8000-000000000000",  # two inverters per home
            "inverter_id": f"{i:08x}-0000-4000-8000-000000000000",
        }
        for i in range(40)
    ]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    owned = []
    for index in range(3):
        result = run_cli(
            "--config.file",
            str(path),
            "--config.check",
            "--shard.count",
            "3",
            "--shard.index",
            str(index),
        )
        assert result.returncode == 0, result.stderr
        owned.append(int(result.stdout.split("(")[1].split()[0]))
    assert sum(owned) == 40 and all(n > 0 for n in owned)
    bad = run_cli(
        "--config.file", str(path), "--config.check", "--shard.count", "2", "--shard.index", "2"
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "podero-exporter: config error: --shard.count/--shard.index: index 2 must be below count 2"
    )


def test_shard_from_the_environment_and_flags_win(tmp_path: Path) -> None:
    raw = minimal_config()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PODERO_SHARD_COUNT": "3", "PODERO_SHARD_INDEX": "1"}
    ok = run_cli("--config.file", str(path), "--config.check", env=env)
    assert ok.returncode == 0, ok.stderr
    assert "in shard 1 of 3" in ok.stdout
    flagged = run_cli("--config.file", str(path), "--config.check", "--shard.index", "2", env=env)
    assert "in shard 2 of 3" in flagged.stdout
    env["PODERO_SHARD_INDEX"] = "3"  # a StatefulSet scaled past the count by hand
    refused = run_cli("--config.file", str(path), "--config.check", env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "podero-exporter: config error: PODERO_SHARD_COUNT/PODERO_SHARD_INDEX: "
        "index 3 must be below count 3"
    )
    env["PODERO_SHARD_INDEX"], env["PODERO_SHARD_COUNT"] = "0", "9" * 40  # absurd
    refused = run_cli("--config.file", str(path), "--config.check", env=env)
    assert refused.returncode == 2 and "PODERO_SHARD_COUNT" in refused.stderr
    env["PODERO_SHARD_COUNT"] = "3"
    env["PODERO_SHARD_INDEX"] = "two"
    refused = run_cli("--config.file", str(path), "--config.check", env=env)
    assert refused.stderr.strip() == (
        "podero-exporter: config error: PODERO_SHARD_INDEX: 'two' is not a whole number"
    )


def test_sharded_replicas_export_disjoint_covering_inverters() -> None:
    from exporter.state.targets import TargetSet

    raw = minimal_config()
    raw["inverters"] = [
        {
            "org_id": ORG,
            "user_id": f"{i // 2:08x}-1111-4000-8000-000000000000",  # two inverters per home
            "inverter_id": f"{i:08x}-0000-4000-8000-000000000000",
        }
        for i in range(100)
    ]
    seen: list[str] = []
    homes: dict[str, set[int]] = {}
    for index in range(4):
        raw["shard"] = {"count": 4, "index": index}
        for t in TargetSet(parse_config(yaml.safe_dump(raw), {})).current():
            seen.append(t.device_id)
            homes.setdefault(t.user_id, set()).add(index)
    assert sorted(seen) == sorted(i["inverter_id"] for i in raw["inverters"])
    assert all(len(shards) == 1 for shards in homes.values())  # a home is never split


@pytest.mark.usefixtures("restore_root_logger")
@pytest.mark.parametrize(("case", "raw", "expected"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_config_exits_2_with_one_line(
    case: str, raw: Any, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from exporter.cli import main

    path = tmp_path / "config.yaml"
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw))
    assert main(["--config.file", str(path), "--config.check"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and expected in err and "Traceback" not in err


@pytest.mark.parametrize("kind", ["toaster", "heat-pump", "toaster\n\x00" * 500, "Inverter"])
def test_an_unknown_kind_is_refused_in_one_short_line_naming_the_kinds(kind: str) -> None:
    raw = minimal_config()
    raw["inverters"][0]["kind"] = kind
    with pytest.raises(ConfigError) as refused:
        to_config(raw)
    message = str(refused.value)
    assert message.startswith("inverters[0].kind: ") and len(message) < 300, message
    assert "\n" not in message and "\x00" not in message
    assert "one of inverter, heat_pump, electric_vehicle, wallbox" in message


def refused_lines(errors: int) -> list[str]:
    """The lines of the refusal of a config with this many bad inverter ids."""
    raw = minimal_config()
    entry = raw["inverters"][0]
    raw["inverters"] = [{**entry, "inverter_id": f"bad-{n}"} for n in range(errors)]
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_dump(raw), {}, source="config.yaml")
    return str(info.value).splitlines()


def test_many_errors_are_shown_up_to_a_limit_and_counted() -> None:
    lines = refused_lines(MAX_ERROR_LINES + 7)
    assert len(lines) == MAX_ERROR_LINES + 1
    assert lines[0] == "inverters[0].inverter_id: 'bad-0' is not a UUID"
    assert lines[MAX_ERROR_LINES - 1].startswith(f"inverters[{MAX_ERROR_LINES - 1}].inverter_id")
    assert lines[-1] == f"... and 7 more errors ({MAX_ERROR_LINES + 7} in all)"


def test_errors_up_to_the_limit_are_all_shown_and_one_more_is_counted_alone() -> None:
    assert len(refused_lines(MAX_ERROR_LINES)) == MAX_ERROR_LINES
    assert refused_lines(MAX_ERROR_LINES + 1)[-1] == (
        f"... and 1 more error ({MAX_ERROR_LINES + 1} in all)"
    )


def test_a_large_deeply_nested_config_is_refused_in_words() -> None:
    # Over the size from which documents are rebuilt after loading (pickled and unpickled),
    # nested as deep as the parser allows: refused with a reason, never a traceback.
    text = "a: " + "[" * 900 + "]" * 900 + "\n" + "# padding\n" * 8000
    assert len(text) > 64 * 1024
    with pytest.raises(ConfigError, match=r"^config\.yaml: the YAML is nested too deeply$"):
        parse_config(text, {}, source="config.yaml")
    # 400 deep loads, survives the rebuild, and is then refused for what it says.
    shallower = "a: " + "[" * 400 + "]" * 400 + "\n" + "# padding\n" * 8000
    with pytest.raises(ConfigError, match="a: unknown key"):
        parse_config(shallower, {}, source="config.yaml")
