//! What a Chinese licence plate can say (GA 36-2018), as data the decoder can search.
//!
//! Most plates start with a province (or region) character and the issuing authority's letter. Then:
//!
//! | template | characters after province + letter | colours |
//! |---|---|---|
//! | standard | 5 letters/digits | blue (small cars), yellow (large vehicles, motorcycles; single or double row) |
//! | with suffix | 4 letters/digits + 学/挂/警/港/澳/领 | yellow (学 learner, 挂 trailer), white (警 police), black (港/澳 cross-border, 领 consulate) |
//! | new energy, small | D or F + 1 letter/digit + 4 digits | green |
//! | new energy, large | 5 digits + D or F | green (gradient yellow-green) |
//!
//! and the layouts that do not:
//!
//! | template | characters | colours |
//! |---|---|---|
//! | embassy | 使 + 6 digits | black |
//! | armed police | WJ + province + 5 letters/digits (the last often a service letter: `WJ粤6788B`) | white, single or double row |
//! | civil aviation (airside vehicles) | 民航 + 5 letters/digits (`民航B9016`) | green |
//! | agricultural vehicle | province + 7 digits, double row (`皖19` over `46673`) | green |
//!
//! The plate's colour, when known, is a prior over templates rather than a hard rule: a template that does
//! not fit the colour costs [`COLOUR_MISMATCH_PENALTY`] nats, so a clear read can still override a colour
//! misjudged under bad light.

use serde::{Deserialize, Serialize};

/// The 31 province-level characters on civilian plates.
pub const PROVINCES: &str = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";
/// Letters used on plates: A–Z without I and O.
pub const LETTERS: &str = "ABCDEFGHJKLMNPQRSTUVWXYZ";
pub const DIGITS: &str = "0123456789";
/// Characters that end special plates.
pub const SUFFIXES: &str = "学挂警港澳领";
/// Embassy plates start with 使.
pub const EMBASSY: char = '使';
/// Civil aviation (airside) plates start with 民航.
pub const CIVIL_AVIATION: &str = "民航";

/// Log-probability cost of reading a template that does not match the plate's colour.
pub const COLOUR_MISMATCH_PENALTY: f32 = 4.0;

/// A plate as written by a person or read by the recognizer, in the one form that is compared, listed and
/// searched: without spaces and the separators people type (`·`, `•`, `.`, `-`, `_`), in capitals. `青A·12345`,
/// `青a 12345` and `青A12345` are the same plate.
pub fn normalise(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace() && !matches!(c, '·' | '•' | '.' | '-' | '_')).flat_map(char::to_uppercase).collect()
}

/// Plate background colour (and with it, the plate type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlateColour {
    /// Small passenger vehicles.
    Blue,
    /// Large vehicles, motorcycles, learner cars, trailers.
    Yellow,
    /// New-energy vehicles.
    Green,
    /// Police and some government vehicles.
    White,
    /// Cross-border (Hong Kong/Macau), embassy and consulate vehicles.
    Black,
    /// The pixels cannot tell: a blue or yellow plate washed out by headlights or infrared looks white.
    Unknown,
}

impl PlateColour {
    pub fn as_str(&self) -> &'static str {
        match self {
            PlateColour::Blue => "blue",
            PlateColour::Yellow => "yellow",
            PlateColour::Green => "green",
            PlateColour::White => "white",
            PlateColour::Black => "black",
            PlateColour::Unknown => "unknown",
        }
    }
}

/// Which characters may stand at one position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Province,
    Letter,
    /// Letter or digit.
    Alnum,
    Digit,
    /// D or F (new-energy marker).
    NewEnergy,
    /// One fixed character (a suffix, or 使).
    Fixed(char),
}

impl Slot {
    /// The characters this slot allows.
    pub fn chars(&self) -> Vec<char> {
        match self {
            Slot::Province => PROVINCES.chars().collect(),
            Slot::Letter => LETTERS.chars().collect(),
            Slot::Alnum => LETTERS.chars().chain(DIGITS.chars()).collect(),
            Slot::Digit => DIGITS.chars().collect(),
            Slot::NewEnergy => vec!['D', 'F'],
            Slot::Fixed(c) => vec![*c],
        }
    }

    fn allows(&self, c: char) -> bool {
        self.chars().contains(&c)
    }
}

/// One plate layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: &'static str,
    pub slots: Vec<Slot>,
    /// Colours this layout is issued in.
    pub colours: &'static [PlateColour],
}

/// Every layout the reader will accept.
pub fn templates() -> Vec<Template> {
    use PlateColour::*;
    use Slot::*;
    // Issued blue or yellow; black and white here are how those look at night, so they cost nothing.
    let mut out = vec![Template { name: "standard", slots: vec![Province, Letter, Alnum, Alnum, Alnum, Alnum, Alnum], colours: &[Blue, Yellow, Black, White] }];
    for suffix in SUFFIXES.chars() {
        let colours: &'static [PlateColour] = match suffix {
            '学' | '挂' => &[Yellow],
            '警' => &[White],
            _ => &[Black],
        };
        out.push(Template { name: "suffixed", slots: vec![Province, Letter, Alnum, Alnum, Alnum, Alnum, Fixed(suffix)], colours });
    }
    out.push(Template { name: "new-energy-small", slots: vec![Province, Letter, NewEnergy, Alnum, Digit, Digit, Digit, Digit], colours: &[Green] });
    out.push(Template { name: "new-energy-large", slots: vec![Province, Letter, Digit, Digit, Digit, Digit, Digit, NewEnergy], colours: &[Green] });
    out.push(Template { name: "embassy", slots: vec![Fixed(EMBASSY), Digit, Digit, Digit, Digit, Digit, Digit], colours: &[Black] });
    out.push(Template { name: "armed-police", slots: vec![Fixed('W'), Fixed('J'), Province, Alnum, Alnum, Alnum, Alnum, Alnum], colours: &[White] });
    out.push(Template { name: "civil-aviation", slots: vec![Fixed('民'), Fixed('航'), Alnum, Alnum, Alnum, Alnum, Alnum], colours: &[Green] });
    out.push(Template { name: "agricultural", slots: vec![Province, Digit, Digit, Digit, Digit, Digit, Digit, Digit], colours: &[Green] });
    out
}

/// Every character a plate can contain.
pub fn alphabet() -> String {
    let mut s = String::new();
    s.push_str(PROVINCES);
    s.push_str(LETTERS);
    s.push_str(DIGITS);
    s.push_str(SUFFIXES);
    s.push(EMBASSY);
    s.push_str(CIVIL_AVIATION);
    s
}

/// The template `text` matches, if any.
pub fn matching_template(text: &str) -> Option<Template> {
    let chars: Vec<char> = text.chars().collect();
    templates().into_iter().find(|t| t.slots.len() == chars.len() && t.slots.iter().zip(&chars).all(|(s, c)| s.allows(*c)))
}

/// Whether `text` is a well-formed plate number.
pub fn is_valid_plate(text: &str) -> bool {
    matching_template(text).is_some()
}

/// The colour a plate reading `text` is issued in, given the colour its pixels suggest. Most layouts come
/// in one colour (学/挂 yellow, 警 white, 港/澳/领/使 black, new energy green), so the layout settles what
/// the pixels cannot: the pale top of a new-energy plate looks white, a learner plate under a blue cast
/// looks blue. A standard plate with white characters is blue: the black standard plates of foreign
/// companies were withdrawn in 2007 (GA 36-2007), so a dark background there is a blue plate at night or
/// in shade. A standard plate that looks white is not issued in white (white plates are police 警 and
/// armed police WJ): it is a blue or yellow plate washed out by light, and which one the pixels cannot
/// say, so it is `Unknown` rather than a guess.
pub fn issued_colour(text: &str, seen: PlateColour) -> PlateColour {
    match matching_template(text) {
        Some(t) if t.name == "standard" && seen == PlateColour::Black => PlateColour::Blue,
        Some(t) if t.name == "standard" && seen == PlateColour::White => PlateColour::Unknown,
        Some(t) if t.colours.len() == 1 => t.colours[0],
        _ => seen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plates_are_normalised_the_same_way_whoever_wrote_them() {
        for written in ["青A·12345", "青a 12345", "青A-123_45", "青A.12•345", "\t青A12345\n"] {
            assert_eq!(normalise(written), "青A12345", "{written:?}");
        }
        assert_eq!(normalise("粤Z·1234港"), "粤Z1234港");
    }

    #[test]
    fn the_layout_settles_the_colour() {
        use PlateColour::*;
        assert_eq!(issued_colour("湘DD08808", White), Green);
        assert_eq!(issued_colour("渝B3587学", Blue), Yellow);
        assert_eq!(issued_colour("京A1234警", Blue), White);
        assert_eq!(issued_colour("粤ZP560港", Blue), Black);
        assert_eq!(issued_colour("使014578", Blue), Black);
        assert_eq!(issued_colour("川A572F4", Black), Blue);
        // A standard plate keeps what its pixels say otherwise.
        assert_eq!(issued_colour("湘A97971", Yellow), Yellow);
        assert_eq!(issued_colour("湘A97971", White), Unknown);
        assert_eq!(issued_colour("WJ粤6788B", Blue), White);
        assert_eq!(issued_colour("民航B9016", Blue), Green);
        assert_eq!(issued_colour("皖1946673", Blue), Green);
        assert_eq!(issued_colour("not a plate", Black), Black);
    }

    #[test]
    fn real_plate_numbers_are_valid() {
        for p in ["皖A0C911", "苏ED51712", "粤ZP560港", "京A1234警", "沪AB123学", "鲁B12345F", "使014578", "藏DT5022", "WJ粤6788B", "民航B9016", "皖1946673"] {
            assert!(is_valid_plate(p), "{p}");
        }
    }

    #[test]
    fn partial_and_foreign_text_is_not() {
        for p in ["皖A0C91", "A0C911", "皖A0C9111", "皖I0C911", "皖AO0911", "欢迎光临", "皖A12港34", "AB12345", "WJ6788B", "民航B901", "皖194667", ""] {
            assert!(!is_valid_plate(p), "{p}");
        }
    }

    #[test]
    fn province_set_has_31_characters() {
        assert_eq!(PROVINCES.chars().count(), 31);
        assert_eq!(LETTERS.len(), 24);
    }
}
