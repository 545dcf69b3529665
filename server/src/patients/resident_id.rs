//! The mainland Chinese resident identity card number (GB 11643-1999): 17 digits and a
//! check character (0-9 or X), and its masked form for display.

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// The check character for the first 17 digits.
pub fn check_char(first17: &str) -> Option<char> {
    if first17.len() != 17 || !first17.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = first17.chars().zip(WEIGHTS).map(|(c, w)| c.to_digit(10).unwrap_or(0) * w).sum();
    Some(CHECK[(sum % 11) as usize])
}

pub fn validate(id: &str) -> Result<(), &'static str> {
    let id = id.trim().to_uppercase();
    if id.len() != 18 || !id.is_ascii() {
        return Err("18 characters: 17 digits and a check digit or X");
    }
    let (body, check) = id.split_at(17);
    match check_char(body) {
        None => Err("the first 17 characters must be digits"),
        Some(c) if check.starts_with(c) => Ok(()),
        Some(_) => Err("the check digit does not match"),
    }
}

/// `110101199003078515` becomes `110***********8515`.
pub fn mask(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digit_and_mask() {
        // The standard's worked example.
        assert_eq!(check_char("11010519491231002"), Some('X'));
        assert!(validate("11010519491231002X").is_ok());
        assert!(validate("11010519491231002x").is_ok());
        assert!(validate("110105194912310021").is_err());
        assert!(validate("1101051949").is_err());
        assert_eq!(mask("11010519491231002X"), "110***********002X");
        assert_eq!(mask(""), "");
    }
}
