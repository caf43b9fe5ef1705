"""One settings tree (environment prefix ``OSHAL_``), built once by an entry point and passed in.

The fields themselves (names, types, defaults, checks) are in ``oshal.settings_fields``, which the node host reads
without pydantic-settings; ``Settings`` reads the same fields through pydantic-settings.
"""

from __future__ import annotations

import os

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SecretsSettingsSource, SettingsConfigDict

from oshal.settings_fields import ENV_PREFIX, SECRETS_DIR_VARIABLE, SettingsFields


class Settings(BaseSettings, SettingsFields):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then the files in ``$OSHAL_SECRETS_DIR`` (read when each settings tree
        is built, so a process started with the variable finds its secrets). A folder that is not there adds nothing:
        a secret missing from it is then reported by whatever needs it, by its setting's name."""
        folder = os.environ.get(SECRETS_DIR_VARIABLE)
        if folder and os.path.isdir(folder):
            file_secret_settings = SecretsSettingsSource(settings_cls, secrets_dir=folder)
        return init_settings, env_settings, dotenv_settings, file_secret_settings
