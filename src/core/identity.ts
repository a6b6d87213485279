/**
 * The identity a sign-in produces: standard fields picked from the ID token's claims (OpenID
 * Connect sign-ins) and from the mapping's result (the WhoAmI answer after the JMESPath mapping),
 * plus that whole mapping result as `attributes`.
 *
 * Sources, in order: for each field the ID token's claim comes first (it is signed by the
 * issuer), and the mapping's field fills it only where the ID token has none:
 *
 * | field         | ID token claim       | mapping field    |
 * | ------------- | -------------------- | ---------------- |
 * | subject       | sub                  | subject          |
 * | email         | email                | email            |
 * | emailVerified | email_verified       | emailVerified    | (from the same source as email)
 * | userName      | preferred_username   | userName         |
 * | fullName      | name                 | fullName         |
 * | firstName     | given_name           | firstName        |
 * | lastName      | family_name          | lastName         |
 * | authTime      | auth_time            | —                |
 * | acr, amr      | acr, amr             | —                |
 *
 * `issuer` is the ID token's `iss`, or else the integration's issuer. A mapping `subject` that
 * differs from the ID token's `sub` is not a gap to fill but a contradiction: the sign-in flow
 * fails it (subject_mismatch) before this runs.
 *
 * Rules for the text fields:
 *
 * 1. A field is taken only when it is a string; `userName` and `subject` may also be a finite
 *    number, which becomes its decimal string (numeric ids are common). Any other type is ignored
 *    with a warning; a missing field or `null` is simply absent.
 * 2. The text is cleaned: lone UTF-16 surrogates become U+FFFD (PostgreSQL refuses them), control
 *    characters (including NUL, which PostgreSQL refuses too), bidirectional formatting
 *    characters (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069, which can make a name
 *    display as something else) and the invisible U+200B, U+2060 and U+FEFF are removed, the
 *    text is normalised to NFC, and every run of whitespace (line breaks and tabs included)
 *    becomes one space, trimmed at both ends. Removing characters is reported as a warning. A
 *    field that is empty after cleaning is absent.
 * 3. Each field is bounded in length, counted in code points (IDENTITY_FIELD_MAX_LENGTH); a longer
 *    value is not used rather than cut, with a warning.
 * 4. `email` must look like an address (`local@domain.tld`, letters of any script allowed, the
 *    domain lower-cased); otherwise it is not used as one, with a warning. `emailVerified` is a
 *    boolean (the strings "true" and "false" too, which some providers send); null when the
 *    source of the email says nothing.
 * 5. When `fullName` is the only name given, it is split into `firstName` and `lastName` by the
 *    rules in person-name.ts, unless the integration turned that off. A usable `firstName` or
 *    `lastName` from the provider always wins: then nothing is split.
 * 6. `attributes` is the mapping's result as is (standard fields included, uncleaned except for
 *    what storage needs; see whoami-mapping.ts), so nothing the provider sent is lost.
 * 7. No subject is a warning: a contact is then recognised by nothing stable, and one keyed by
 *    email alone can be taken over by whoever gets that address at another provider.
 *
 * Warnings never quote the values: they are personal data and may end up in logs.
 */
import { jsonTypeName } from './json-limits.ts'
import { splitFullName } from './person-name.ts'

export interface Identity {
  /** The provider's stable id of the person (`sub`). */
  readonly subject: string | null
  /** Who vouches for `subject`: the ID token's issuer, or the integration's. */
  readonly issuer: string | null
  readonly email: string | null
  /** Whether the provider verified `email`; null: it did not say. */
  readonly emailVerified: boolean | null
  readonly userName: string | null
  readonly fullName: string | null
  readonly firstName: string | null
  readonly lastName: string | null
  /** When the end user authenticated at the provider (ISO 8601), from the ID token. */
  readonly authTime: string | null
  readonly acr: string | null
  readonly amr: readonly string[] | null
  /** The mapping's result: JSON with null-prototype objects, standard fields included. */
  readonly attributes: Readonly<Record<string, unknown>>
}

export type StandardField = 'subject' | 'email' | 'userName' | 'fullName' | 'firstName' | 'lastName'

/** In code points. 254 is the longest address that fits an SMTP path (RFC 5321 §4.5.3.1.3). */
export const IDENTITY_FIELD_MAX_LENGTH: Readonly<Record<StandardField, number>> = Object.freeze({
  subject: 255,
  email: 254,
  userName: 256,
  fullName: 256,
  firstName: 256,
  lastName: 256,
})

/** The ID token claim each field takes first (see the table above). */
const CLAIM_OF: Readonly<Record<StandardField, string>> = {
  subject: 'sub',
  email: 'email',
  userName: 'preferred_username',
  fullName: 'name',
  firstName: 'given_name',
  lastName: 'family_name',
}

/**
 * An OpenID Connect sign-in whose WhoAmI URL is the issuer's userinfo endpoint gets the standard
 * claims (OIDC Core §5.1) there too: many providers put `email` and `email_verified` in the
 * userinfo answer only. They fill what the ID token does not say, with its signed claims kept,
 * and `email` travels with its own `email_verified` (or none), so an unverified address is never
 * paired with another source's "verified". `sub` is not taken (the flow has already checked that
 * the two agree), nor `auth_time`, `acr` or `amr` (only the ID token's are checked). A userinfo
 * answer that is not an object adds nothing.
 */
export function withUserInfoClaims(
  idTokenClaims: Readonly<Record<string, unknown>>,
  userInfo: unknown,
): Readonly<Record<string, unknown>> {
  if (typeof userInfo !== 'object' || userInfo === null || Array.isArray(userInfo)) {
    return idTokenClaims
  }
  const answer = userInfo as Readonly<Record<string, unknown>>
  const merged: Record<string, unknown> = Object.assign(Object.create(null), idTokenClaims)
  const has = (record: Readonly<Record<string, unknown>>, name: string) =>
    Object.hasOwn(record, name) && record[name] !== null && record[name] !== undefined
  for (const name of ['preferred_username', 'name', 'given_name', 'family_name']) {
    if (!has(merged, name) && has(answer, name)) merged[name] = answer[name]
  }
  if (!has(merged, 'email') && has(answer, 'email')) {
    merged.email = answer.email
    if (has(answer, 'email_verified')) merged.email_verified = answer.email_verified
    else delete merged.email_verified
  }
  return merged
}

export interface ToIdentityOptions {
  /** Split `fullName` into first and last name when only `fullName` is given (on by default). */
  readonly splitFullName: boolean
  /** The validated ID token's claims of an OpenID Connect sign-in; null otherwise. */
  readonly claims?: Readonly<Record<string, unknown>> | null
  /** The integration's issuer, for sign-ins without an ID token. */
  readonly issuer?: string | null
}

/**
 * Declared here rather than taken from whoami-mapping.ts, which imports this file; it has the
 * shape of a MappingError, so the mapping passes these warnings on as its own.
 */
export interface IdentityWarning {
  readonly message: string
}

export interface IdentityOutcome {
  readonly identity: Identity
  readonly warnings: IdentityWarning[]
}

export function toIdentity(
  attributes: Readonly<Record<string, unknown>>,
  options: ToIdentityOptions,
): IdentityOutcome {
  const warnings: IdentityWarning[] = []
  const claims = options.claims ?? null
  const subject = pick(claims, attributes, 'subject', warnings)
  // The email and whether it is verified come from the same source, claims or mapping.
  const claimedEmail =
    claims === null ? null : pickText(claims, CLAIM_OF.email, 'email', warnings, 'ID token')
  const email = pickEmail(
    claimedEmail ?? pickText(attributes, 'email', 'email', warnings, null),
    warnings,
  )
  const emailVerified =
    email === null
      ? null
      : claimedEmail !== null
        ? pickBoolean(claims!, 'email_verified', warnings)
        : pickBoolean(attributes, 'emailVerified', warnings)
  const userName = pick(claims, attributes, 'userName', warnings)
  const fullName = pick(claims, attributes, 'fullName', warnings)
  let firstName = pick(claims, attributes, 'firstName', warnings)
  let lastName = pick(claims, attributes, 'lastName', warnings)
  if (options.splitFullName && fullName !== null && firstName === null && lastName === null) {
    ;({ firstName, lastName } = splitFullName(fullName))
  }
  if (subject === null) {
    warnings.push({
      message:
        'subject: none (map one, e.g. subject: sub or subject: user.id): without a stable id, a contact is recognised by its email alone, which another account at another provider can claim',
    })
  }
  const iss = claims !== null && typeof claims.iss === 'string' ? claims.iss : null
  return {
    identity: {
      subject,
      issuer: iss ?? options.issuer ?? null,
      email,
      emailVerified,
      userName,
      fullName,
      firstName,
      lastName,
      authTime: claims !== null ? epochToIso(claims.auth_time) : null,
      acr: claims !== null && typeof claims.acr === 'string' ? claims.acr : null,
      amr: claims !== null ? stringList(claims.amr) : null,
      attributes,
    },
    warnings,
  }
}

/** The ID token's claim for `field` when it has a usable one, else the mapping's. */
function pick(
  claims: Readonly<Record<string, unknown>> | null,
  attributes: Readonly<Record<string, unknown>>,
  field: StandardField,
  warnings: IdentityWarning[],
): string | null {
  if (claims !== null) {
    const claimed = pickText(claims, CLAIM_OF[field], field, warnings, 'ID token')
    if (claimed !== null) return claimed
  }
  return pickText(attributes, field, field, warnings, null)
}

function pickBoolean(
  source: Readonly<Record<string, unknown>>,
  key: string,
  warnings: IdentityWarning[],
): boolean | null {
  const raw = Object.hasOwn(source, key) ? source[key] : undefined
  if (raw === undefined || raw === null) return null
  if (typeof raw === 'boolean') return raw
  if (raw === 'true' || raw === 'false') return raw === 'true'
  warnings.push({ message: `${key} must be true or false, got ${jsonTypeName(raw)}; not used` })
  return null
}

function epochToIso(value: unknown): string | null {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) return null
  const date = new Date(value * 1000)
  return Number.isNaN(date.getTime()) ? null : date.toISOString()
}

function stringList(value: unknown): readonly string[] | null {
  if (!Array.isArray(value)) return null
  const strings = value.filter((v): v is string => typeof v === 'string' && v.length <= 64)
  return strings.slice(0, 16)
}

function pickText(
  source: Readonly<Record<string, unknown>>,
  key: string,
  field: StandardField,
  warnings: IdentityWarning[],
  from: string | null,
): string | null {
  const raw = Object.hasOwn(source, key) ? source[key] : undefined
  if (raw === undefined || raw === null) return null
  const label = from === null ? field : `${field} (${from} ${key})`
  let text: string
  const numeric = field === 'userName' || field === 'subject'
  if (typeof raw === 'string') text = raw
  else if (numeric && typeof raw === 'number' && Number.isFinite(raw)) {
    text = String(raw)
  } else {
    const expected = numeric ? 'a string or a number' : 'a string'
    warnings.push({ message: `${label} must be ${expected}, got ${jsonTypeName(raw)}; not used` })
    return null
  }
  const { text: cleaned, removed } = cleanText(text)
  if (removed > 0) {
    const what = removed === 1 ? 'character' : 'characters'
    const kind = 'control, invisible or bidirectional formatting'
    warnings.push({ message: `${label}: removed ${removed} ${kind} ${what}` })
  }
  if (cleaned === '') return null
  const max = IDENTITY_FIELD_MAX_LENGTH[field]
  if (codePointLength(cleaned) > max) {
    warnings.push({ message: `${label} is longer than ${max} characters; not used` })
    return null
  }
  return cleaned
}

// The same rule for ASCII-only addresses, which is most of them, without Unicode classes.
const EMAIL_ASCII =
  /^([^\s@"(),:;<>[\]\\\u0080-\uFFFF]{1,64})@((?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)$/
const EMAIL =
  /^([^\s@"(),:;<>[\]\\]{1,64})@((?:[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?\.)+\p{L}(?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?)$/u

function pickEmail(text: string | null, warnings: IdentityWarning[]): string | null {
  if (text === null) return null
  const match = EMAIL_ASCII.exec(text) ?? EMAIL.exec(text)
  if (match === null || match[1] === undefined || match[2] === undefined) {
    warnings.push({
      message: 'email is not an email address, so it is not used as one (it stays in attributes)',
    })
    return null
  }
  return `${match[1]}@${match[2].toLowerCase()}`
}

// Lone surrogates: a high one not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g
// C0 and C1 controls except the whitespace ones (turned into spaces below), bidirectional
// formatting characters, and invisible characters that only serve to hide or join text.
const UNWANTED =
  /[\u0000-\u0008\u000E-\u001F\u007F-\u0084\u0086-\u009F\u061C\u200B\u200E\u200F\u202A-\u202E\u2060\u2066-\u2069\uFEFF]/g
const WHITESPACE = /[\s\u0085]+/g

// Printable ASCII words separated by single spaces: already clean, the common case.
const PLAIN = /^[\x21-\x7E]+(?: [\x21-\x7E]+)*$/

/** Cleans text for display and storage (rule 2 above); `removed` counts the characters dropped. */
export function cleanText(text: string): { text: string; removed: number } {
  if (PLAIN.test(text)) return { text, removed: 0 }
  let removed = 0
  const cleaned = text
    .replace(LONE_SURROGATE, '\uFFFD')
    .replace(UNWANTED, () => {
      removed++
      return ''
    })
    .normalize('NFC')
    .replace(WHITESPACE, ' ')
    .trim()
  return { text: cleaned, removed }
}

export function codePointLength(text: string): number {
  let count = 0
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    // A low surrogate after a high one is the second half of one code point.
    if (code < 0xdc00 || code > 0xdfff || i === 0) count++
    else {
      const previous = text.charCodeAt(i - 1)
      if (previous < 0xd800 || previous > 0xdbff) count++
    }
  }
  return count
}
