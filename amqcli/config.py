"""Which broker a command talks to, in one order of precedence:

``--url`` > ``--broker NAME`` > ``AMQ_URL`` > ``AMQ_BROKER`` > the config file's
``default`` profile > the local store in the user's data directory.

URLs: ``local``, ``local:PATH``, ``amqp://user:pass@host:port/vhost`` and ``amqps://...``;
TLS settings ride in the URL's query as in RabbitMQ's URI spec (``cacertfile``,
``certfile``, ``keyfile``, ``verify``, ``server_name_indication``). Profiles live in
``config.toml`` in the user's config directory (or the file ``AMQ_CONFIG`` names)::

    default = "prod"

    [brokers.prod]
    url = "amqps://app@rabbit.example.com/orders?cacertfile=/etc/ssl/ca.pem"
    password_env = "PROD_RABBIT_PASSWORD"     # or password_file = "~/.rabbit-password"

Passwords never leave this module unmasked except to the backend.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NamedTuple

from . import errors

ENV_URL = "AMQ_URL"
ENV_BROKER = "AMQ_BROKER"
ENV_CONFIG = "AMQ_CONFIG"
TLS_KEYS = ("cacertfile", "certfile", "keyfile", "verify", "server_name_indication")
PROFILE_KEYS = {"url", "password", "password_env", "password_file", *TLS_KEYS}


def _unix_like() -> bool:
    return sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd"))


def default_store_path() -> str:
    """``amq/local.db`` under the user's data directory ($XDG_DATA_HOME on Linux)."""
    if _unix_like():
        # platformdirs' rule for these, without its import cost on every start
        base = os.environ.get("XDG_DATA_HOME", "").strip() or \
            os.path.expanduser("~/.local/share")
    else:
        from platformdirs import user_data_dir
        base = user_data_dir(appauthor=False)
    return os.path.join(base, "amq", "local.db")


def config_path() -> str:
    """The profiles file: ``AMQ_CONFIG``, else ``amq/config.toml`` in the config directory."""
    given = os.environ.get(ENV_CONFIG)
    if given:
        return os.path.expanduser(given)
    if _unix_like():
        base = os.environ.get("XDG_CONFIG_HOME", "").strip() or os.path.expanduser("~/.config")
    else:
        from platformdirs import user_config_dir
        base = user_config_dir(appauthor=False)
    return os.path.join(base, "amq", "config.toml")


class BrokerURL(NamedTuple):
    scheme: str  # "local", "amqp" or "amqps"
    url: str  # for amqp: with the password, without the TLS query parameters
    path: str | None = None  # local: the store file
    tls: dict[str, str] = {}  # TLS_KEYS found in the URL's query or the profile
    profile: str | None = None

    @property
    def display(self) -> str:
        return mask_password(self.url)


def mask_password(url: str) -> str:
    """The URL with its password replaced by ``****``."""
    from urllib.parse import urlsplit, urlunsplit
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:****@{netloc[1]}"))


def load_profiles() -> dict[str, Any]:
    """The config file as a dict ({} when there is none); a bad file names itself."""
    path = config_path()
    try:
        with open(path, "rb") as f:
            import tomllib
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise errors.UsageError(f"cannot read the config file {path}: {err.strerror}") from None
    except ValueError as err:  # tomllib.TOMLDecodeError
        raise errors.UsageError(f"the config file {path} is not valid TOML: {err}") from None
    brokers = data.get("brokers", {})
    if not isinstance(brokers, dict) or not all(isinstance(b, dict) for b in brokers.values()):
        raise errors.UsageError(f"the config file {path}: [brokers.NAME] tables expected")
    for name, profile in brokers.items():
        unknown = set(profile) - PROFILE_KEYS
        if unknown:
            raise errors.UsageError(
                f"the config file {path}: unknown key(s) {', '.join(sorted(unknown))} in "
                f"[brokers.{name}]; known: {', '.join(sorted(PROFILE_KEYS))}")
        if not isinstance(profile.get("url"), str):
            raise errors.UsageError(f"the config file {path}: [brokers.{name}] needs a url")
    return data


def _profile_url(name: str) -> BrokerURL:
    data = load_profiles()
    profile = data.get("brokers", {}).get(name)
    if profile is None:
        known = ", ".join(sorted(data.get("brokers", {}))) or "none"
        raise errors.UsageError(
            f"no broker profile '{name}' in {config_path()} (profiles: {known})")
    password = _profile_password(name, profile)
    url = parse_url(profile["url"], password=password)
    tls = dict(url.tls)
    tls.update({k: os.path.expanduser(str(profile[k])) for k in TLS_KEYS if k in profile})
    return url._replace(tls=tls, profile=name)


def _profile_password(name: str, profile: dict[str, Any]) -> str | None:
    if "password_env" in profile:
        value = os.environ.get(str(profile["password_env"]))
        if value is None:
            raise errors.UsageError(
                f"broker profile '{name}' takes its password from ${profile['password_env']}, "
                "which is not set")
        return value
    if "password_file" in profile:
        path = os.path.expanduser(str(profile["password_file"]))
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().strip()
        except OSError as err:
            raise errors.UsageError(
                f"broker profile '{name}': cannot read password file {path}: {err.strerror}") \
                from None
    if "password" in profile:
        return str(profile["password"])
    return None


def parse_url(text: str, password: str | None = None) -> BrokerURL:
    """A URL as given on the command line, in AMQ_URL or in a profile."""
    if text == "local":
        return BrokerURL("local", text, default_store_path())
    if text.startswith("local:"):
        path = os.path.expanduser(text[len("local:"):])
        if not path:
            raise errors.UsageError("local: needs a path, as in local:/tmp/amq.db")
        return BrokerURL("local", text, os.path.abspath(path))
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme not in ("amqp", "amqps"):
        raise errors.UsageError(
            f"unsupported broker URL {mask_password(text)!r}: use local, local:PATH, "
            "amqp://user:pass@host:port/vhost or amqps://...")
    from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - validates the port
    except ValueError as err:
        raise errors.UsageError(f"bad broker URL {mask_password(text)!r}: {err}") from None
    query = parse_qsl(parts.query, keep_blank_values=True)
    tls = {k: os.path.expanduser(v) for k, v in query if k in TLS_KEYS}
    if not tls and password is None:
        return BrokerURL(scheme, text)
    rest = [(k, v) for k, v in query if k not in TLS_KEYS]
    netloc = parts.netloc
    if password is not None and parts.username is not None:
        host = netloc.rsplit("@", 1)[1]
        netloc = f"{parts.username}:{quote(password, safe='')}@{host}"
    url = urlunsplit(parts._replace(netloc=netloc, query=urlencode(rest)))
    return BrokerURL(scheme, url, None, tls)


def resolve(url: str | None = None, broker: str | None = None) -> BrokerURL:
    """The broker for a command: see the module docstring for the order."""
    if url and broker:
        raise errors.UsageError("give --url or --broker, not both")
    if url:
        return parse_url(url)
    if broker:
        return _profile_url(broker)
    if os.environ.get(ENV_URL):
        return parse_url(os.environ[ENV_URL])
    if os.environ.get(ENV_BROKER):
        return _profile_url(os.environ[ENV_BROKER])
    if os.path.exists(config_path()):
        default = load_profiles().get("default")
        if isinstance(default, str):
            return _profile_url(default)
    return parse_url("local")
