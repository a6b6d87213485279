/**
 * Splits a full name into a first and a last name, for a WhoAmI answer that only has `fullName`.
 *
 * Rules, in order:
 *
 * 1. Whitespace is trimmed and every run of it becomes one space. An empty name gives two nulls.
 * 2. Nothing is lost or reordered. For a name without a comma, `firstName + ' ' + lastName` is
 *    the name from rule 1 (or `firstName` alone when `lastName` is null).
 * 3. One word is a first name: `Cher` gives `Cher` / null. A name written without spaces, as
 *    Chinese and Japanese names usually are (`山田太郎`), is one word too.
 * 4. "Last, First": a name with exactly one comma, words on both sides, and no suffix after the
 *    comma is read as family name first: `Smith, John` gives `John` / `Smith`, and
 *    `García López, José María` gives `José María` / `García López`. Here
 *    `lastName + ', ' + firstName` gives back the name. This is the way to state a split exactly.
 * 5. Otherwise the last word is the last name and the words before it are the first name
 *    (middle names stay with the first name: `John Ronald Reuel Tolkien` gives
 *    `John Ronald Reuel` / `Tolkien`).
 * 6. The last name grows to the left over lower-case surname particles (`van`, `von`, `der`,
 *    `de`, `la`, `da`, `dos`, `di`, `du`, `del`, `bin`, `ibn`, `al`, `ter`, ...) and the Irish
 *    `Ó`, `Ní`, `Mac`, `Nic`: `Ludwig van Beethoven` gives `Ludwig` / `van Beethoven`. The
 *    first word is never taken, so `Mac Miller` stays `Mac` / `Miller`. Capitalised particles are not
 *    recognised (`Vincent Van Gogh` gives `Vincent Van` / `Gogh`), because `Van` is also a
 *    given name. A lower-case `y`, `e` or `i` between two surnames joins both:
 *    `José Ortega y Gasset` gives `José` / `Ortega y Gasset`.
 * 7. A generational or academic suffix (`Jr.`, `Sr`, `III`, `PhD`, ...) stays with the word
 *    before it: `Martin Luther King Jr.` gives `Martin Luther` / `King Jr.`, and
 *    `Martin Luther King, Jr.` is not mistaken for rule 4. Titles are not removed:
 *    `Dr. Jane Smith` gives `Dr. Jane` / `Smith`.
 *
 * Known limits, kept on purpose because no rule on a single string gets them right:
 *
 * - Family-name-first orders written with a space (`山田 太郎`, `Nagy János`, `Nguyễn Văn An`,
 *   `Kim Jong-un`) are split as if given-name-first. Rule 4's comma form avoids it.
 * - Two family names (`Gabriel García Márquez`, `Maria da Silva Santos`) keep only the last word
 *   as the last name.
 * - Names without family names (`Aung San Suu Kyi`) get one anyway.
 *
 * A provider that knows better should send `firstName` and `lastName`; those always win, and the
 * split can be turned off per integration.
 */

/** For the schema's `splitFullName` field: the rules above in a few sentences. */
export const SPLIT_FULL_NAME_DESCRIPTION =
  'When the WhoAmI answer has fullName but neither firstName nor lastName, split fullName: the ' +
  'last word (with lower-case particles such as "van der" and a suffix such as "Jr.") is the last ' +
  'name, the words before it the first name; one word is a first name; "Last, First" is read ' +
  'as such. Nothing is dropped or reordered. Family-name-first names written with a space ' +
  '("山田 太郎") are split the wrong way round; send firstName and lastName, or turn this off. ' +
  'Default true.'

export interface SplitName {
  readonly firstName: string | null
  readonly lastName: string | null
}

const PARTICLES = new Set([
  'van',
  'von',
  'der',
  'den',
  'de',
  'del',
  'della',
  'dei',
  'degli',
  'di',
  'da',
  'das',
  'do',
  'dos',
  'du',
  'des',
  'la',
  'le',
  'lo',
  'las',
  'los',
  'ter',
  'ten',
  'te',
  'zu',
  'af',
  'av',
  'bin',
  'binti',
  'bint',
  'ibn',
  'al',
  'el',
  'Ó',
  'Ní',
  'Mac',
  'Nic',
])

/** `José Ortega y Gasset`: a conjunction takes the word before it into the last name as well. */
const CONJUNCTIONS = new Set(['y', 'e', 'i'])

const SUFFIXES = new Set([
  'jr',
  'jr.',
  'sr',
  'sr.',
  'ii',
  'iii',
  'iv',
  'v',
  'phd',
  'ph.d.',
  'md',
  'm.d.',
  'esq',
  'esq.',
])

function isSuffix(word: string): boolean {
  const bare = word.endsWith(',') ? word.slice(0, -1) : word
  return SUFFIXES.has(bare.toLowerCase())
}

const WHITESPACE_RUN = /\s+/g

export function splitFullName(fullName: string): SplitName {
  const name = fullName.trim().replace(WHITESPACE_RUN, ' ')
  if (name === '') return { firstName: null, lastName: null }

  const comma = name.indexOf(',')
  if (comma !== -1 && name.indexOf(',', comma + 1) === -1) {
    const family = name.slice(0, comma).trim()
    const given = name.slice(comma + 1).trim()
    if (family !== '' && given !== '' && !isSuffix(given)) {
      return { firstName: given, lastName: family }
    }
  }

  const words = name.split(' ')
  if (words.length === 1) return { firstName: name, lastName: null }

  let start = words.length - 1
  // Rule 7: a suffix belongs with the word before it, unless that would take the first word.
  if (start > 1 && isSuffix(words[start] ?? '')) start--
  // Rule 6: particles join the last name, but the first word always stays the first name.
  for (;;) {
    const before = words[start - 1] ?? ''
    if (start > 1 && PARTICLES.has(before)) start--
    else if (start > 2 && CONJUNCTIONS.has(before)) start -= 2
    else break
  }
  return { firstName: words.slice(0, start).join(' '), lastName: words.slice(start).join(' ') }
}
