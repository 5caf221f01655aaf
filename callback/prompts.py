"""What the IVR says: the prompt catalogue per language, and the wording of amounts and durations.

Prompts are sentences; `speech.py` turns each into an 8 kHz WAV for rtpengine. Amounts and durations
are written as words the speech engine reads naturally ("10 dollars and 50 cents", "35 minutes").
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from enum import StrEnum


class Prompt(StrEnum):
    WELCOME = "welcome"
    BALANCE = "balance"
    ENTER_PIN = "enter_pin"
    WRONG_PIN = "wrong_pin"
    ENTER_DESTINATION = "enter_destination"
    INVALID_NUMBER = "invalid_number"
    NO_RATE = "no_rate"
    BLOCKED = "blocked"
    INSUFFICIENT_CREDIT = "insufficient_credit"
    MAX_DURATION = "max_duration"
    CONNECTING = "connecting"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CALL_FAILED = "call_failed"
    ONE_MINUTE_LEFT = "one_minute_left"
    OUT_OF_CREDIT = "out_of_credit"
    ACCOUNT_UNAVAILABLE = "account_unavailable"
    GOODBYE = "goodbye"


CATALOGUE: dict[str, dict[Prompt, str]] = {
    "en": {
        Prompt.WELCOME: "Welcome.",
        Prompt.BALANCE: "Your balance is {amount}.",
        Prompt.ENTER_PIN: "Please enter your PIN, followed by the hash key.",
        Prompt.WRONG_PIN: "That PIN is not valid.",
        Prompt.ENTER_DESTINATION: "Please enter the number you wish to call, followed by the hash key.",
        Prompt.INVALID_NUMBER: "That number is not valid. Please try again.",
        Prompt.NO_RATE: "Calls to this destination are not available. Please try another number.",
        Prompt.BLOCKED: "Calls to this number are not allowed. Please try another number.",
        Prompt.INSUFFICIENT_CREDIT: "Your credit is not enough for a call to this destination.",
        Prompt.MAX_DURATION: "You can talk for {duration}.",
        Prompt.CONNECTING: "Connecting your call.",
        Prompt.BUSY: "The number you called is busy.",
        Prompt.NO_ANSWER: "The number you called does not answer.",
        Prompt.CALL_FAILED: "Your call could not be connected.",
        Prompt.ONE_MINUTE_LEFT: "You have one minute left.",
        Prompt.OUT_OF_CREDIT: "Your credit has run out.",
        Prompt.ACCOUNT_UNAVAILABLE: "Your account cannot make calls. Please contact your provider.",
        Prompt.GOODBYE: "Goodbye.",
    },
    "es": {
        Prompt.WELCOME: "Bienvenido.",
        Prompt.BALANCE: "Su saldo es de {amount}.",
        Prompt.ENTER_PIN: "Por favor, marque su PIN, seguido de la tecla numeral.",
        Prompt.WRONG_PIN: "Ese PIN no es válido.",
        Prompt.ENTER_DESTINATION: "Por favor, marque el número al que desea llamar, seguido de la tecla numeral.",
        Prompt.INVALID_NUMBER: "Ese número no es válido. Inténtelo de nuevo.",
        Prompt.NO_RATE: "Las llamadas a este destino no están disponibles. Pruebe otro número.",
        Prompt.BLOCKED: "Las llamadas a este número no están permitidas. Pruebe otro número.",
        Prompt.INSUFFICIENT_CREDIT: "Su saldo no es suficiente para llamar a este destino.",
        Prompt.MAX_DURATION: "Puede hablar durante {duration}.",
        Prompt.CONNECTING: "Conectando su llamada.",
        Prompt.BUSY: "El número marcado está ocupado.",
        Prompt.NO_ANSWER: "El número marcado no contesta.",
        Prompt.CALL_FAILED: "No se pudo conectar su llamada.",
        Prompt.ONE_MINUTE_LEFT: "Le queda un minuto.",
        Prompt.OUT_OF_CREDIT: "Su saldo se ha agotado.",
        Prompt.ACCOUNT_UNAVAILABLE: "Su cuenta no puede hacer llamadas. Contacte con su proveedor.",
        Prompt.GOODBYE: "Adiós.",
    },
}
DEFAULT_LANGUAGE = "en"

# Currency names: (one unit, several units, one hundredth, several hundredths), per language.
_CURRENCIES = {
    "en": {
        "USD": ("dollar", "dollars", "cent", "cents"),
        "CAD": ("Canadian dollar", "Canadian dollars", "cent", "cents"),
        "EUR": ("euro", "euros", "cent", "cents"),
        "GBP": ("pound", "pounds", "penny", "pence"),
    },
    "es": {
        "USD": ("dólar", "dólares", "centavo", "centavos"),
        "EUR": ("euro", "euros", "céntimo", "céntimos"),
    },
}
_AND = {"en": "and", "es": "y"}
_UNITS = {
    "en": {"hour": ("hour", "hours"), "minute": ("minute", "minutes"), "under": "less than a minute"},
    "es": {"hour": ("hora", "horas"), "minute": ("minuto", "minutos"), "under": "menos de un minuto"},
}


def language_of(code: str | None) -> str:
    """The catalogue language for an account's language code ("pt-BR" -> "pt", unknown -> English)."""
    base = (code or DEFAULT_LANGUAGE).split("-")[0].lower()
    return base if base in CATALOGUE else DEFAULT_LANGUAGE


def _plural(count: int, forms: tuple[str, str]) -> str:
    return f"{count} {forms[0] if count == 1 else forms[1]}"


def amount_words(amount: Decimal, currency: str, language: str = DEFAULT_LANGUAGE) -> str:
    """10.5 USD -> "10 dollars and 50 cents"; amounts below a hundredth are not spoken."""
    language = language_of(language)
    negative = amount < 0
    cents_total = int((abs(amount) * 100).to_integral_value(rounding=ROUND_DOWN))
    units, cents = divmod(cents_total, 100)
    names = _CURRENCIES[language].get(currency) or _CURRENCIES[DEFAULT_LANGUAGE].get(currency)
    if names is None:  # a currency we have no words for: read its code
        names = (currency, currency, "hundredth", "hundredths")
    parts = []
    if units or not cents:
        parts.append(_plural(units, names[0:2]))
    if cents:
        parts.append(_plural(cents, names[2:4]))
    words = f" {_AND[language]} ".join(parts)
    return ("minus " if negative and language == "en" else "menos " if negative else "") + words


def duration_words(seconds: int, language: str = DEFAULT_LANGUAGE) -> str:
    """2100 -> "35 minutes"; 3900 -> "1 hour and 5 minutes"; whole minutes, rounded down."""
    units = _UNITS[language_of(language)]
    minutes = seconds // 60
    if minutes == 0:
        return units["under"]
    hours, minutes = divmod(minutes, 60)
    parts = []
    if hours:
        parts.append(_plural(hours, units["hour"]))
    if minutes:
        parts.append(_plural(minutes, units["minute"]))
    return f" {_AND[language_of(language)]} ".join(parts)


def sentence(prompt: Prompt, language: str = DEFAULT_LANGUAGE, **values: str) -> str:
    return CATALOGUE[language_of(language)][prompt].format(**values)
