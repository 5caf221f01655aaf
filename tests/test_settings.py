"""Settings: documented defaults, override file, environment variables, one-line errors."""

from __future__ import annotations

import pytest

from boomerang.settings import PROJECT_ROOT, HostPort, SettingsError, load


def test_defaults_make_the_demo_work_on_one_machine():
    settings = load({})
    assert settings.database_url == f"sqlite:///{PROJECT_ROOT / 'var' / 'boomerang.db'}"
    assert settings.sip_listen == HostPort("127.0.0.1", 5060)
    assert settings.portal_listen == HostPort("127.0.0.1", 8080)
    assert settings.carrier_default_gateway == "sip:127.0.0.1:5080"
    assert settings.numbers_access_number == "123333333"
    assert settings.numbers_sms_number == "1234000000"
    assert settings.numbers_blocked_prefixes == ()  # nothing blocked unless the operator says so
    assert settings.rtpengine_port_min < settings.rtpengine_port_max


def test_environment_overrides_the_file():
    settings = load(
        {
            "BOOMERANG_DATABASE_URL": "mysql+pymysql://u:p@127.0.0.1:3306/boomerang",
            "BOOMERANG_SIP_LISTEN": "127.0.0.2:5070",
            "BOOMERANG_RTPENGINE_PORT_MIN": "40000",
            "BOOMERANG_RTPENGINE_PORT_MAX": "40999",
            "BOOMERANG_NUMBERS_ACCESS_NUMBER": "441234567890",
        }
    )
    assert settings.database_url == "mysql+pymysql://u:p@127.0.0.1:3306/boomerang"
    assert settings.sip_listen == HostPort("127.0.0.2", 5070)
    assert settings.rtpengine_port_min == 40000
    assert settings.numbers_access_number == "441234567890"


def test_blocked_prefixes_are_read_as_a_list_and_passed_on_as_written():
    settings = load({"BOOMERANG_NUMBERS_BLOCKED_PREFIXES": " +1900, 44909 ,"})
    assert settings.numbers_blocked_prefixes == ("1900", "44909")
    assert settings.numbers_blocked_prefixes.covers("19005550100")
    assert not settings.numbers_blocked_prefixes.covers("12025550143")
    assert load(settings.environment()).numbers_blocked_prefixes == ("1900", "44909")


def test_override_file_sets_only_what_differs(tmp_path):
    override = tmp_path / "site.toml"
    override.write_text('[portal]\nlisten = "127.0.0.1:9090"\n')
    settings = load({"BOOMERANG_CONFIG": str(override), "BOOMERANG_PORTAL_WORKERS": "3"})
    assert settings.portal_listen == HostPort("127.0.0.1", 9090)
    assert settings.portal_workers == 3
    assert settings.sip_listen == HostPort("127.0.0.1", 5060)  # untouched default


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"BOOMERANG_SIP_LISTEN": "localhost"}, ["sip.listen", "BOOMERANG_SIP_LISTEN", "host:port"]),
        ({"BOOMERANG_SIP_LISTEN": "127.0.0.1:70000"}, ["sip.listen", "between 1 and 65535"]),
        ({"BOOMERANG_PORTAL_WORKERS": "many"}, ["portal.workers", "integer"]),
        ({"BOOMERANG_CARRIER_DEFAULT_GATEWAY": "127.0.0.1:5080"}, ["carrier.default_gateway", "SIP URI"]),
        ({"BOOMERANG_NUMBERS_ACCESS_NUMBER": "12ab"}, ["numbers.access_number"]),
        ({"BOOMERANG_NUMBERS_BLOCKED_PREFIXES": "1900,19x"}, ["numbers.blocked_prefixes", "'19x'"]),
        ({"BOOMERANG_DATABASE_URL": "postgres://x"}, ["database.url", "mysql+pymysql"]),
        ({"BOOMERANG_LOG_LEVEL": "loud"}, ["log.level"]),
        ({"BOOMERANG_SIP_LISTN": "127.0.0.1:5060"}, ["unknown setting", "BOOMERANG_SIP_LISTN"]),
        (
            {"BOOMERANG_RTPENGINE_PORT_MIN": "40000", "BOOMERANG_RTPENGINE_PORT_MAX": "30000"},
            ["rtpengine.port_min", "rtpengine.port_max"],
        ),
    ],
)
def test_a_bad_value_gives_one_line_naming_the_setting(environ, names):
    with pytest.raises(SettingsError) as error:
        load(environ)
    message = str(error.value)
    assert "\n" not in message
    for name in names:
        assert name in message


def test_override_file_errors_name_the_file(tmp_path):
    override = tmp_path / "site.toml"
    override.write_text("[sip]\nlisen = 1\n")
    with pytest.raises(SettingsError, match="site.toml: unknown setting sip.lisen"):
        load({"BOOMERANG_CONFIG": str(override)})
    override.write_text("[sip\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load({"BOOMERANG_CONFIG": str(override)})
    with pytest.raises(SettingsError, match="does not exist"):
        load({"BOOMERANG_CONFIG": str(tmp_path / "missing.toml")})


def test_secret_key_is_generated_once_and_kept(tmp_path):
    settings = load({"BOOMERANG_PATHS_VAR_DIR": str(tmp_path / "var")})
    first = settings.secret_key()
    assert len(first) >= 32
    assert settings.secret_key() == first
    assert load({"BOOMERANG_PATHS_VAR_DIR": str(tmp_path / "var")}).secret_key() == first
    assert (tmp_path / "var" / "secret.key").stat().st_mode & 0o077 == 0  # readable by its owner only


def test_configured_secret_key_wins(tmp_path):
    settings = load({"BOOMERANG_PATHS_VAR_DIR": str(tmp_path), "BOOMERANG_SECURITY_SECRET_KEY": "k" * 40})
    assert settings.secret_key() == b"k" * 40
    assert not (tmp_path / "secret.key").exists()


def test_a_database_url_error_does_not_show_the_password():
    with pytest.raises(SettingsError) as error:
        load({"BOOMERANG_DATABASE_URL": "mysql+pymysql://boomerang:s3cret@127.0.0.1:notaport/db"})
    assert "s3cret" not in str(error.value)
    assert "boomerang:***@127.0.0.1:notaport/db" in str(error.value)


def test_a_child_process_loads_the_same_settings_from_the_environment(tmp_path):
    settings = load(
        {
            "BOOMERANG_PATHS_VAR_DIR": str(tmp_path),
            "BOOMERANG_SIP_LISTEN": "127.0.0.3:5999",
            "BOOMERANG_TRIGGERS_PER_SECOND": "7",
        }
    )
    assert load(settings.environment()) == settings
