/**
 * Characters refused in text that people read (names shown to admins and end users, hints passed
 * to a provider's login page).
 */

/** C0 and C1 control characters. */
export const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

/**
 * The invisible characters that reorder or hide text: bidi marks, embeddings, overrides and
 * isolates, zero-width characters, the byte order mark. In shown text they can disguise it (a
 * name that reads as another's).
 */
export const INVISIBLE = /[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/
