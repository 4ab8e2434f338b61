"""Which broker a command talks to, in one order of precedence:

``--url`` > ``--broker NAME`` > ``AMQ_URL`` > ``AMQ_BROKER`` > the config file's
``default`` profile > the local store in the user's data directory.

URLs: ``local``, ``local:PATH``, ``amqp://user:pass@host:port/vhost`` and ``amqps://...``;
TLS settings ride in the URL's query as in RabbitMQ's URI spec (``cacertfile``,
``certfile``, ``keyfile``, ``verify``, ``server_name_indication``). A URL may name several
hosts of one cluster (``amqp://user:pass@host1:5672,host2:5673,host3/vhost``): the backend
connects to the first that answers, in order, or in a random order with ``?shuffle=true``,
and a reconnect tries the next one first. Profiles live in ``config.toml`` in the user's
config directory (or the file ``AMQ_CONFIG`` names)::

    default = "prod"

    [brokers.prod]
    url = "amqps://app@rabbit.example.com/orders?cacertfile=/etc/ssl/ca.pem"
    password_env = "PROD_RABBIT_PASSWORD"     # or password_file = "~/.rabbit-password"

    [brokers.cluster]
    urls = ["amqp://app@rabbit1/orders", "amqp://app@rabbit2/orders"]  # instead of url

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
PROFILE_KEYS = {"url", "urls", "password", "password_env", "password_file", *TLS_KEYS}
SHUFFLE = "shuffle"  # the query parameter amq reads itself (pika would refuse it)
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


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
    # amqp: one URL per host, in the order given (password included, without the TLS
    # and shuffle parameters): what the backend connects to
    hosts: tuple[str, ...] = ()
    shuffle: bool = False  # ?shuffle=true: try the hosts in a random order
    local_vhost: str = "/"  # local: the vhost of ?vhost=NAME

    @property
    def display(self) -> str:
        return " ".join(mask_password(u) for u in self.url.split(" "))

    @property
    def vhost(self) -> str:
        """The vhost the URL names (the local broker's: ``?vhost=NAME``, else ``/``)."""
        if self.scheme == "local":
            return self.local_vhost
        from urllib.parse import unquote, urlsplit
        path = urlsplit((self.hosts or (self.url,))[0]).path
        return unquote(path[1:]) if len(path) > 1 else "/"


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
        url, urls = profile.get("url"), profile.get("urls")
        if url is not None and urls is not None:
            raise errors.UsageError(
                f"the config file {path}: [brokers.{name}] has url and urls: give one")
        if urls is not None:
            if not isinstance(urls, list) or not urls or \
                    not all(isinstance(u, str) for u in urls):
                raise errors.UsageError(f"the config file {path}: [brokers.{name}] urls "
                                        "must be a list of URLs (strings)")
        elif not isinstance(url, str):
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
    if "urls" in profile:
        url = join_urls([parse_url(u, password=password) for u in profile["urls"]])
    else:
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
    if text == "local" or text.startswith(("local?", "local:")):
        return _local_url(text)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme not in ("amqp", "amqps"):
        raise errors.UsageError(
            f"unsupported broker URL {mask_password(text)!r}: use local, local:PATH, "
            "amqp://user:pass@host:port/vhost or amqps://...")
    from urllib.parse import parse_qsl, quote, urlencode
    netloc, path, query_text = _split_amqp(text[len(scheme) + 3:])
    userinfo, at, hostlist = netloc.rpartition("@")
    hosts = _hosts(hostlist, text)
    query = parse_qsl(query_text, keep_blank_values=True)
    tls = {k: os.path.expanduser(v) for k, v in query if k in TLS_KEYS}
    shuffle = _shuffle([v for k, v in query if k == SHUFFLE], text)
    rest = [(k, v) for k, v in query if k not in TLS_KEYS and k != SHUFFLE]
    if password is not None and at:
        userinfo = f"{userinfo.split(':', 1)[0]}:{quote(password, safe='')}"
    tail = path + (f"?{urlencode(rest)}" if rest else "")
    urls = tuple(f"{scheme}://{userinfo}{at}{host}{tail}" for host in hosts)
    if not tls and password is None and len(hosts) == 1 and not shuffle:
        return BrokerURL(scheme, text, hosts=urls)
    kept = rest + [(SHUFFLE, "true")] if shuffle else rest  # shown by display
    url = f"{scheme}://{userinfo}{at}{hostlist}{path}" + (f"?{urlencode(kept)}" if kept else "")
    return BrokerURL(scheme, url, None, tls, hosts=urls, shuffle=shuffle)


def _local_url(text: str) -> BrokerURL:
    """``local``, ``local:PATH``, each with an optional ``?vhost=NAME`` (percent-encoded,
    as in an amqp URL's path: ``?vhost=%2F`` is ``/``)."""
    from urllib.parse import parse_qsl
    rest, mark, query = text[len("local"):].partition("?")
    vhost = "/"
    if mark:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            pairs = []
        if len(pairs) != 1 or pairs[0][0] != "vhost":
            raise errors.UsageError(
                f"local URL {text!r}: the one parameter it takes is ?vhost=NAME")
        vhost = pairs[0][1]
        if not vhost:
            raise errors.UsageError(f"local URL {text!r}: ?vhost= needs a name")
    if not rest:
        return BrokerURL("local", text, default_store_path(), local_vhost=vhost)
    path = os.path.expanduser(rest[1:])
    if not path:
        raise errors.UsageError("local: needs a path, as in local:/tmp/amq.db")
    return BrokerURL("local", text, os.path.abspath(path), local_vhost=vhost)


def _split_amqp(rest: str) -> tuple[str, str, str]:
    """What follows ``scheme://``: (netloc, path, query); a fragment is dropped."""
    rest = rest.split("#", 1)[0]
    rest, _, query = rest.partition("?")
    cut = rest.find("/")
    if cut < 0:
        return rest, "", query
    return rest[:cut], rest[cut:], query


def _hosts(hostlist: str, text: str) -> list[str]:
    """The ``host[:port]`` entries of a netloc's host part, each checked: a host that is
    empty or a port that is not a number from 1 to 65535 is a usage error. An empty host
    part alone (``amqp:///vhost``) is pika's default, localhost."""
    if hostlist == "":
        return [""]
    out = []
    for entry in hostlist.split(","):
        if entry.startswith("["):  # [IPv6]:port
            host, bracket, port = entry[1:].partition("]")
            if not bracket or (port and not port.startswith(":")):
                raise _bad_url(text, f"bad host '{entry}'")
            port = port[1:]
        else:
            host, colon, port = entry.partition(":")
            if colon and not port:
                raise _bad_url(text, f"no port after '{host}:'")
        if not host:
            raise _bad_url(text, "a host is empty" if hostlist.count(",") else "no host")
        if port and not (port.isdigit() and port.isascii() and 0 < int(port) < 65536):
            raise _bad_url(text, f"port '{port}' of {host} is not a number from 1 to 65535")
        out.append(entry)
    return out


def _shuffle(values: list[str], text: str) -> bool:
    if not values:
        return False
    value = values[-1].lower()
    if value not in _TRUE + _FALSE:
        raise _bad_url(text, f"shuffle={values[-1]}: use true or false")
    return value in _TRUE


def _bad_url(text: str, why: str) -> errors.UsageError:
    return errors.UsageError(f"bad broker URL {mask_password(text)!r}: {why}")


def join_urls(urls: list[BrokerURL]) -> BrokerURL:
    """A profile's ``urls``: one broker of all their hosts, in order (the first URL's
    scheme, TLS settings and shuffle; each host keeps its own user, vhost and query)."""
    first = urls[0]
    if any(u.scheme != first.scheme for u in urls):
        raise errors.UsageError("a profile's urls must all be amqp:// or all amqps://")
    hosts = tuple(h for u in urls for h in u.hosts)
    if len(urls) == 1:
        return first
    text = " ".join(u.url for u in urls)
    return first._replace(url=text, hosts=hosts, shuffle=any(u.shuffle for u in urls))


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
