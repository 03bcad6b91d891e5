"""The pseudonymization key: read from the environment or an owner-only file, never shown.

Floor 2: the clean stage asks for it only when a table pseudonymizes columns; ``etl/clean.py``
then uses it as data (the HMAC pads), so it is never part of a plan string or a log line.
"""

from __future__ import annotations

import hmac
import os
import stat

from deepspark import environ
from deepspark.config import Config
from deepspark.errors import ConfigError, SetupError


def pseudonym_key(cfg: Config, columns: list[str]) -> bytes | None:
    """The HMAC key from ``$privacy.key_env`` or the file ``privacy.key_file``, or a refusal.

    Only asked for when some table pseudonymizes columns. With both sources set they must hold
    the same key: silently preferring one would change every pseudonym. The key never enters
    config, params, logs or artifacts, and no error message shows it.
    """
    if not columns:
        return None
    privacy = cfg.privacy
    env, path, least = privacy.key_env, privacy.key_file, privacy.min_key_bytes
    from_env = (environ.get(env) or "").encode()
    from_file = read_key_file(path) if path else None
    if from_file is not None and from_env and not hmac.compare_digest(from_env, from_file):
        where = cfg.where
        raise ConfigError(
            f"{where}: privacy.key_file {path} and ${env} hold different keys; set only one of them"
        )
    key = from_env if from_file is None else from_file
    if len(key) >= least:
        return key
    found = f"only {len(key)} bytes" if key else ("unset" if from_file is None else "empty")
    make = "python -c 'import secrets; print(secrets.token_hex(32))'"
    if from_file is None:
        source = f"${env}"
        example = f"export {env}=$({make}), or name a key file in privacy.key_file"
    else:
        source = f"privacy.key_file {path}"
        example = f"(umask 077 && {make} > {path})"
    raise SetupError(
        f"pseudonymizing {', '.join(columns)} needs a secret key in {source} "
        f"(at least {least} bytes; it is {found}); e.g. {example}"
    )


def read_key_file(path: str) -> bytes:
    """A key file's bytes minus the trailing newline; refused unless only its owner can read it."""
    try:
        with open(path, "rb") as fh:
            # fstat of the opened file: the mode checked is the mode of the bytes read.
            mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
            if mode & 0o077:
                raise SetupError(
                    f"privacy.key_file {path} is accessible by group or others (mode {mode:04o}); "
                    f"a key must be readable by its owner only: chmod 600 {path}"
                )
            return fh.read().rstrip(b"\r\n")
    except FileNotFoundError as e:
        raise SetupError(f"privacy.key_file {path} does not exist (expected the key in it)") from e
    except OSError as e:
        raise SetupError(f"privacy.key_file {path} cannot be read: {e.strerror}") from e
