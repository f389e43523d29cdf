"""Language choice: the user's explicit switch first, then the browser's Accept-Language."""

from __future__ import annotations

from flask import request, session

# Babel locale id -> the language tag browsers send
SUPPORTED_LOCALES = {"en": "en", "zh_Hans_CN": "zh-CN"}
LOCALE_SESSION_KEY = "locale"


def select_locale(default: str) -> str:
    chosen = session.get(LOCALE_SESSION_KEY)
    if chosen in SUPPORTED_LOCALES:
        return str(chosen)
    by_tag = {tag: locale for locale, tag in SUPPORTED_LOCALES.items()}
    best = request.accept_languages.best_match(list(by_tag))
    return by_tag[best] if best else default
