"""The database target: DATABASE_URL parsed once, its parts as the driver reads them,
its password never shown, every refusal a ConfigError."""

from __future__ import annotations

import string
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import make_url

from planctl.errors import ConfigError
from planctl.target import Target

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Passwords start with a marker no other part of a generated URL holds, so "the
#: password is not in the text" is a real check, however short its random tail.
passwords = st.text(min_size=0, max_size=20).map(lambda tail: "Pw-SECRET-" + tail)
names = st.text(string.ascii_letters + string.digits + "_-.", min_size=1, max_size=20)
hosts = st.one_of(
    st.just("127.0.0.1"),
    st.just("db.example.com"),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,2}", fullmatch=True),
)
ports = st.one_of(st.none(), st.integers(min_value=1, max_value=65535))
options = st.lists(
    st.tuples(
        st.sampled_from(["sslmode", "sslrootcert", "host", "application_name"]),
        st.text(string.ascii_letters + string.digits + "/_.-", max_size=20),
    ),
    max_size=3,
    unique_by=lambda option: option[0],
)


def pg_url(
    user: str, password: str | None, host: str, port: int | None, dbname: str, query: list
) -> str:
    auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "")
    where = host + (f":{port}" if port is not None else "")
    args = "&".join(f"{key}={quote(value, safe='/')}" for key, value in query)
    return f"postgresql://{auth}@{where}/{quote(dbname, safe='')}" + (f"?{args}" if args else "")


@PROPERTY
@given(names, st.one_of(st.none(), passwords), hosts, ports, names, options)
def test_postgresql_parts_round_trip_as_the_driver_reads_them(
    user: str, password: str | None, host: str, port: int | None, dbname: str, query: list
) -> None:
    url = pg_url(user, password, host, port, dbname, query)
    target = Target.parse(url)
    assert target.engine == "postgresql" and target.driver == "postgresql+psycopg"
    assert (target.user, target.password, target.host, target.port, target.database) == (
        user,
        password,
        host,
        port,
        dbname,
    )
    assert target.query == tuple(query)
    for key, value in query:
        assert target.option(key) == value
    # what SQLAlchemy (and so psycopg) gets is what planctl read without it
    driver = make_url(target.url)
    assert (driver.username, driver.password, driver.host, driver.port, driver.database) == (
        user,
        password,
        host,
        port,
        dbname,
    )
    assert target.sqlalchemy_url == driver


@PROPERTY
@given(names, passwords, hosts, ports, names, options)
def test_no_shown_form_holds_the_password(
    user: str, password: str, host: str, port: int | None, dbname: str, query: list
) -> None:
    target = Target.parse(pg_url(user, password, host, port, dbname, query))
    for shown in (
        target.masked,
        str(target),
        repr(target),
        f"{target}",
        str(target.sqlalchemy_url),
    ):
        assert "Pw-SECRET-" not in shown and quote(password, safe="") not in shown
    assert target.password in target.secrets


@PROPERTY
@given(names, passwords, hosts, ports, names, names)
def test_another_database_keeps_server_and_credentials(
    user: str, password: str, host: str, port: int | None, dbname: str, other: str
) -> None:
    target = Target.parse(pg_url(user, password, host, port, dbname, [("sslmode", "require")]))
    moved = target.with_database(other)
    assert moved.database == other
    assert (moved.user, moved.password, moved.host, moved.port, moved.query) == (
        target.user,
        target.password,
        target.host,
        target.port,
        target.query,
    )


@PROPERTY
@given(passwords, st.sampled_from(["h:port", "h:99999", "[::1", "h:-1", "h:1x"]))
def test_a_refusal_never_shows_the_password(password: str, authority: str) -> None:
    url = f"postgresql://ana:{quote(password, safe='')}@{authority}/db"
    with pytest.raises(ConfigError) as refused:
        Target.parse(url)
    shown = f"{refused.value.message} {refused.value.hint}"
    assert "Pw-SECRET-" not in shown and "malformed DATABASE_URL" in shown


schemes = st.sampled_from(
    [
        "sqlite:///",
        "sqlite://",
        "postgresql://",
        "postgres://",
        "mysql://",
        "sqlite+x:///",
        "SQLite:///",
        "postgresql+psycopg2://",
        "",
    ]
)


@PROPERTY
@given(schemes, st.text(max_size=60))
def test_any_text_is_a_target_or_a_config_error(scheme: str, rest: str) -> None:
    """Whatever DATABASE_URL holds, parsing ends in a Target SQLAlchemy can use, or a
    one-line ConfigError."""
    try:
        target = Target.parse(scheme + rest)
    except ConfigError as error:
        assert "\n" not in error.message
        return
    assert target.engine in ("sqlite", "postgresql")
    assert (target.sqlite_file is not None) == (target.engine == "sqlite")
    assert target.sqlalchemy_url.get_dialect().name == target.engine


@PROPERTY
@given(st.text(string.ascii_letters + string.digits + "_-. ", min_size=1, max_size=30))
def test_a_sqlite_file_is_found_as_the_driver_reads_it(name: str) -> None:
    path = Path("/tmp/planctl-target-test") / (name.strip() or "x")
    target = Target.parse(f"sqlite:///{quote(str(path))}")
    assert target.is_sqlite and target.sqlite_file == path
    assert make_url(target.url).database == str(path)
    assert Target.sqlite(path) == target


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", "is an in-memory SQLite database"),
        ("sqlite:///:memory:", "is an in-memory SQLite database"),
        ("sqlite:///x.db?mode=memory&uri=true", "is an in-memory SQLite database"),
        ("sqlite:///x.db?cache=shared", "'cache' in DATABASE_URL .* needs uri=true"),
        ("sqlite:///x.db?nosuch=1", "unknown query argument 'nosuch'"),
        ("mysql://u@h/db", "unsupported database 'mysql'"),
        ("postgresql+pg8000://u@h/db", "driver 'pg8000' is not installed"),
        ("sqlite+nosuchdriver:///x.db", r"unknown database driver 'sqlite\+nosuchdriver'"),
        ("SQLite:///x.db", "unknown database driver 'SQLite'"),
        ("POSTGRESQL://u@h/db", "unknown database driver 'POSTGRESQL'"),
        ("postgresql://u@h:5x/db", "malformed DATABASE_URL"),
        ("postgresql://u@h:/db", "malformed DATABASE_URL"),  # SQLAlchemy: int('')
        ("no url at all", "malformed DATABASE_URL"),
    ],
)
def test_refusals(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Target.parse(url)


def test_a_sqlite_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="which is not a regular file"):
        Target.parse(f"sqlite:///{tmp_path}")


def test_bare_postgresql_urls_get_psycopg_and_keep_the_bin_dir() -> None:
    target = Target.parse("postgres://ana:pw@h/db", pg_bindir=Path("/opt/pg/bin"))
    assert target.url == "postgresql+psycopg://ana:pw@h/db"
    assert target.masked == "postgresql+psycopg://ana:***@h/db"
    assert target.pg_bindir == Path("/opt/pg/bin")
    assert target.plain_sqlite_file is None and target.sqlite_file is None


def test_only_a_plain_sqlite_url_is_opened_without_sqlalchemy(tmp_path: Path) -> None:
    plain = Target.parse(f"sqlite:///{tmp_path}/p.db")
    assert plain.plain_sqlite_file == tmp_path / "p.db"
    uri = Target.parse(f"sqlite:///file:{tmp_path}/p.db?mode=ro&uri=true")
    assert uri.sqlite_file == tmp_path / "p.db" and uri.plain_sqlite_file is None


def test_parsing_does_not_import_sqlalchemy() -> None:
    code = (
        "import sys; from planctl.target import Target; "
        "t = Target.parse('postgresql://u:p@h/db'); t.masked; t.with_database('x'); "
        "print('sqlalchemy' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
