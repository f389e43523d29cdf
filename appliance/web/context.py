"""The only module that reads the application's shared state for views."""

from flask import current_app

from appliance.services import Services

EXTENSION_KEY = "appliance"


def current_services() -> Services:
    services: Services = current_app.extensions[EXTENSION_KEY]
    return services
