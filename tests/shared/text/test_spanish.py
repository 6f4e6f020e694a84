"""Spanish normalisation and sentence splitting: what a Spanish narrator reads, and where it came from."""

from __future__ import annotations

import pytest

from shared.text.chunking import chunk_text
from shared.text.languages import canonical_tag, rules_for
from shared.text.normalize import normalize
from shared.text.segment import split_sentences
from tests.shared.text.invariants import check_chunks


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        # currency, Spanish conventions: dots group thousands, a comma marks the cents, symbol after or before
        (
            "El total es 1.234,56 €.",
            "El total es mil doscientos treinta y cuatro euros con cincuenta y seis céntimos.",
        ),
        ("Cuesta $20.", "Cuesta veinte dólares."),
        ("Son 20 $ y 1 €.", "Son veinte dólares y un euro."),
        ("Pagó 21 € y 1 £ y 200 £.", "Pagó veintiún euros y una libra y doscientas libras."),
        ("Ganó US$5 y 40 USD.", "Ganó cinco dólares estadounidenses y cuarenta dólares."),
        ("Vale 1.000.000 €.", "Vale un millón de euros."),
        ("Invirtió 2,5 millones de €.", "Invirtió dos coma cinco millones de euros."),
        # cardinals, decimals, apocope before a noun
        ("Tiene 1.000.000 de habitantes.", "Tiene un millón de habitantes."),
        ("Tenía 21 años y 1 día.", "Tenía veintiún años y un día."),
        ("Pi es 3,14 y 0,5 y 2,05.", "Pi es tres coma catorce y cero coma cinco y dos coma cero cinco."),
        ("Hace -5 grados.", "Hace menos cinco grados."),
        # ordinals
        ("Quedó 1.º y ella 2.ª, el 3.er puesto.", "Quedó primero y ella segunda, el tercer puesto."),
        ("Vive en el 5º piso.", "Vive en el quinto piso."),
        # dates and times
        ("El 25/12/2023 llegó.", "El veinticinco de diciembre de dos mil veintitrés llegó."),
        ("El 3 de mayo de 2024.", "El tres de mayo de dos mil veinticuatro."),
        ("Desde el 2024-05-03.", "Desde el tres de mayo de dos mil veinticuatro."),
        ("A las 14:30 y a las 14:00.", "A las catorce y treinta y a las catorce horas."),
        ("A la 1:05 salió.", "A la una y cinco salió."),
        # percentages, with and without the space
        ("Subió un 15 % y luego 15%.", "Subió un quince por ciento y luego quince por ciento."),
        ("Bajó un 3,5 %.", "Bajó un tres coma cinco por ciento."),
        # measures
        ("Corre a 100 km/h a -5 °C.", "Corre a cien kilómetros por hora a menos cinco grados centígrados."),
        ("Pesa 1 kg.", "Pesa un kilo."),
        # abbreviations
        (
            "El Sr. García y la Sra. López con el Dr. Pérez y Dña. Ana.",
            "El señor García y la señora López con el doctor Pérez y doña Ana.",
        ),
        ("La Srta. Ruiz y la Dra. Gil.", "La señorita Ruiz y la doctora Gil."),
        ("Viven en EE. UU. desde 1999.", "Viven en Estados Unidos desde mil novecientos noventa y nueve."),
        ("Volvió de EE.UU. Luego descansó.", "Volvió de Estados Unidos. Luego descansó."),
        ("Llegó D. Quijote.", "Llegó don Quijote."),
        ("Peras, manzanas, etc. Luego volví.", "Peras, manzanas, etcétera. Luego volví."),
        ("Peras, manzanas, etc., y uvas.", "Peras, manzanas, etcétera, y uvas."),
        ("¿Viene Ud. mañana?", "¿Viene usted mañana?"),
        ("La pág. 5, el n.º 7.", "La página cinco, el número siete."),
        ("Murió en el 44 a. C. en Roma.", "Murió en el cuarenta y cuatro antes de Cristo en Roma."),
        ("Vive en la Avda. de la Paz.", "Vive en la avenida de la Paz."),
        # what is not a number stays as written
        ("Escribe a ana@ejemplo.es hoy.", "Escribe a ana@ejemplo.es hoy."),
    ],
)
def test_spanish_expansions(text: str, spoken: str) -> None:
    assert normalize(text, "es").text == spoken


def test_regional_tags_use_the_spanish_rules() -> None:
    assert rules_for("es-MX").code == "es"
    assert normalize("Pagó 20 €.", "es-MX").text == "Pagó veinte euros."
    assert normalize("It cost $20.", "en-GB").text == "It cost twenty dollars."


def test_amounts_map_back_to_their_source() -> None:
    normalized = normalize("Pagó 1.234,56 € y llegó a las 14:30.", "es")
    text = normalized.text
    money = text.index("mil"), text.index("céntimos") + len("céntimos")
    clock = text.index("catorce"), text.rindex("treinta") + len("treinta")
    assert normalized.original[slice(*normalized.span_to_original(*money))] == "1.234,56 €"
    assert normalized.original[slice(*normalized.span_to_original(*clock))] == "14:30"
    assert normalized.original[slice(*normalized.span_to_original(0, 4))] == "Pagó"


def test_spanish_sentences() -> None:
    text = normalize("¿Vienes? Sí. ¡Claro que sí! El Sr. Pérez llegó a las 5. Fin.", "es").text
    assert [text[a:b] for a, b in split_sentences(text, "es")] == [
        "¿Vienes?",
        "Sí.",
        "¡Claro que sí!",
        "El señor Pérez llegó a las cinco.",
        "Fin.",
    ]


def test_spanish_chunks_keep_every_invariant() -> None:
    text = (
        "El Sr. García pagó 1.234,56 € el 25/12/2023 a las 14:30. ¿Por qué? Nadie lo sabe.\n\n"
        "Subió un 15 % en EE. UU. y quedó 1.º en la clasificación, etc. Luego volvió a casa."
    ) * 3
    chunks = chunk_text(text, budget_seconds=3.0, language="es")
    check_chunks(text, chunks, budget_seconds=3.0, language="es")


@pytest.mark.parametrize(
    ("tag", "canonical"), [("es", "es"), ("ES-mx", "es-MX"), ("en_gb", "en-GB"), ("zh-hant-tw", "zh-Hant-TW")]
)
def test_canonical_tags(tag: str, canonical: str) -> None:
    assert canonical_tag(tag) == canonical
