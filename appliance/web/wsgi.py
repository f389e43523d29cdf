"""gunicorn entry point: `appliance.web.wsgi:app`, config from APPLIANCE_CONFIG."""

from appliance.config import config_path_from_env, load_config
from appliance.web import create_app

app = create_app(load_config(config_path_from_env()))
