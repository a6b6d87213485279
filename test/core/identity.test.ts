import { describe, expect, it } from 'vitest'
import {
  cleanText,
  IDENTITY_FIELD_MAX_LENGTH,
  toIdentity,
  withUserInfoClaims,
} from '../../src/core/identity.ts'

const split = { splitFullName: true }
/** The warnings a test is about: the one for a missing subject has tests of its own below. */
const messages = (warnings: { message: string }[]): string[] =>
  warnings.map((w) => w.message).filter((m) => !m.startsWith('subject: none'))

describe('toIdentity', () => {
  it('takes the documented default shape as is', () => {
    const attributes = {
      email: 'billy@example.com',
      userName: 'billy.bob',
      fullName: 'Billy Bob',
      firstName: 'Billy',
      lastName: 'Bob',
      extra: { nested: true },
    }
    const { identity, warnings } = toIdentity(attributes, split)
    expect(identity).toEqual({
      subject: null,
      issuer: null,
      email: 'billy@example.com',
      emailVerified: null,
      userName: 'billy.bob',
      fullName: 'Billy Bob',
      firstName: 'Billy',
      lastName: 'Bob',
      authTime: null,
      acr: null,
      amr: null,
      attributes,
    })
    expect(messages(warnings)).toEqual([])
  })

  it('treats missing fields and null as absent, without warnings', () => {
    const { identity, warnings } = toIdentity({ email: null }, split)
    expect(identity).toMatchObject({
      email: null,
      userName: null,
      fullName: null,
      firstName: null,
      lastName: null,
    })
    expect(messages(warnings)).toEqual([])
  })

  describe('payload values of the wrong type', () => {
    const wrong: [string, unknown, string][] = [
      ['a number', 42, 'a number'],
      ['a boolean', true, 'a boolean'],
      ['an object', { first: 'Billy' }, 'an object'],
      ['an array', ['Billy'], 'an array'],
    ]
    for (const field of ['email', 'fullName', 'firstName', 'lastName'] as const) {
      for (const [label, value, described] of wrong) {
        it(`ignores ${field} given as ${label}, with a warning`, () => {
          const { identity, warnings } = toIdentity({ [field]: value }, split)
          expect(identity[field]).toBeNull()
          expect(messages(warnings)).toEqual([
            `${field} must be a string, got ${described}; not used`,
          ])
          expect(identity.attributes[field]).toEqual(value)
        })
      }
    }

    it('turns a numeric userName into a string', () => {
      expect(toIdentity({ userName: 12345 }, split).identity.userName).toBe('12345')
      expect(toIdentity({ userName: 0 }, split).identity.userName).toBe('0')
    })

    for (const [label, value, described] of wrong.filter(([label]) => label !== 'a number')) {
      it(`ignores userName given as ${label}, with a warning`, () => {
        const { identity, warnings } = toIdentity({ userName: value }, split)
        expect(identity.userName).toBeNull()
        expect(messages(warnings)).toEqual([
          `userName must be a string or a number, got ${described}; not used`,
        ])
      })
    }
  })

  describe('cleaning', () => {
    it('removes NUL (which PostgreSQL refuses) and other control characters, with a warning', () => {
      const { identity, warnings } = toIdentity({ fullName: 'Billy\u0000 Bob\u0007' }, split)
      expect(identity.fullName).toBe('Billy Bob')
      expect(messages(warnings)).toEqual([
        'fullName: removed 2 control, invisible or bidirectional formatting characters',
      ])
    })

    it('removes bidirectional override, embedding and isolate characters', () => {
      // "evil\u202Egnp.exe" displays as "evilexe.png".
      const { identity, warnings } = toIdentity(
        { userName: 'evil\u202Egnp.exe', firstName: '\u2066Bob\u2069', lastName: 'x\u200F\u061C' },
        split,
      )
      expect(identity.userName).toBe('evilgnp.exe')
      expect(identity.firstName).toBe('Bob')
      expect(identity.lastName).toBe('x')
      expect(messages(warnings)).toHaveLength(3)
    })

    it('removes zero-width spaces and BOMs but keeps joiners that scripts and emoji need', () => {
      expect(cleanText('a\u200Bb\uFEFFc\u2060d')).toEqual({ text: 'abcd', removed: 3 })
      expect(cleanText('می\u200Cخواهم').text).toBe('می\u200Cخواهم')
      expect(cleanText('👩\u200D💻').text).toBe('👩\u200D💻')
    })

    it('turns line breaks and tabs into spaces, collapses whitespace and trims', () => {
      expect(cleanText('  Billy\n\t Bob\u2028 Jr  ')).toEqual({ text: 'Billy Bob Jr', removed: 0 })
    })

    it('normalises to NFC', () => {
      const decomposed = 'Jose\u0301'
      expect(cleanText(decomposed).text).toBe('Jos\u00E9')
      expect(cleanText('e\u202E\u0301').text).toBe('\u00E9')
    })

    it('replaces lone surrogates, which PostgreSQL refuses, and keeps pairs', () => {
      expect(cleanText('a\uD800b\uDC00c😀').text).toBe('a\uFFFDb\uFFFDc😀')
    })

    it('treats a value that is empty after cleaning as absent', () => {
      const { identity } = toIdentity({ fullName: ' \u0000\u202E ' }, split)
      expect(identity.fullName).toBeNull()
      expect(identity.firstName).toBeNull()
    })
  })

  describe('lengths', () => {
    it('refuses an over-long value instead of cutting it', () => {
      const max = IDENTITY_FIELD_MAX_LENGTH.userName
      const { identity, warnings } = toIdentity({ userName: 'u'.repeat(max + 1) }, split)
      expect(identity.userName).toBeNull()
      expect(messages(warnings)).toEqual([`userName is longer than ${max} characters; not used`])
      expect(toIdentity({ userName: 'u'.repeat(max) }, split).identity.userName).toHaveLength(max)
    })

    it('counts code points, so emoji are not penalised', () => {
      const max = IDENTITY_FIELD_MAX_LENGTH.fullName
      expect(toIdentity({ fullName: '😀'.repeat(max) }, split).identity.fullName).not.toBeNull()
    })
  })

  describe('email', () => {
    it('keeps addresses, of any script, and lower-cases the domain', () => {
      const email = (value: string): string | null =>
        toIdentity({ email: value }, split).identity.email
      expect(email('Billy.Bob+tag@Example.COM')).toBe('Billy.Bob+tag@example.com')
      expect(email('josé@correo.españa.es')).toBe('josé@correo.españa.es')
      expect(email('用户@例子.广告')).toBe('用户@例子.广告')
      expect(email('a@xn--p1ai.xn--p1ai')).toBe('a@xn--p1ai.xn--p1ai')
    })

    it('does not use something that is not an address as one, and says so', () => {
      for (const value of [
        'billy',
        'billy@',
        '@example.com',
        'billy@localhost',
        'billy@@example.com',
        'billy bob@example.com',
        'billy@example..com',
        'billy@-example.com',
        'billy@1.2.3.4',
        `${'a'.repeat(65)}@example.com`,
        '"quoted"@example.com',
      ]) {
        const { identity, warnings } = toIdentity({ email: value }, split)
        expect(identity.email, value).toBeNull()
        expect(messages(warnings)).toEqual([
          'email is not an email address, so it is not used as one (it stays in attributes)',
        ])
        expect(identity.attributes.email).toBe(value)
      }
    })

    it('never quotes the value in a warning', () => {
      const { warnings } = toIdentity({ email: 'secret-person' }, split)
      expect(JSON.stringify(warnings)).not.toContain('secret')
    })
  })

  describe('full name splitting', () => {
    it('splits fullName when it is the only name', () => {
      expect(toIdentity({ fullName: 'Billy Bob' }, split).identity).toMatchObject({
        fullName: 'Billy Bob',
        firstName: 'Billy',
        lastName: 'Bob',
      })
    })

    it('lets explicit firstName and lastName win over the split', () => {
      const both = toIdentity(
        { fullName: 'Billy Bob', firstName: 'William', lastName: 'Roberts' },
        split,
      )
      expect(both.identity).toMatchObject({ firstName: 'William', lastName: 'Roberts' })
      // One explicit name is enough to stop the split: a guess for the other could contradict it
      // (山田 太郎 with firstName 太郎 would get lastName 太郎).
      const first = toIdentity({ fullName: '山田 太郎', firstName: '太郎' }, split)
      expect(first.identity).toMatchObject({ firstName: '太郎', lastName: null })
      const last = toIdentity({ fullName: 'Billy Bob', lastName: 'Bob' }, split)
      expect(last.identity).toMatchObject({ firstName: null, lastName: 'Bob' })
    })

    it('splits when the explicit names are unusable', () => {
      const { identity } = toIdentity({ fullName: 'Billy Bob', firstName: '', lastName: 7 }, split)
      expect(identity).toMatchObject({ firstName: 'Billy', lastName: 'Bob' })
    })

    it('can be switched off per integration', () => {
      const { identity } = toIdentity({ fullName: 'Billy Bob' }, { splitFullName: false })
      expect(identity).toMatchObject({ fullName: 'Billy Bob', firstName: null, lastName: null })
    })

    it('splits the cleaned name', () => {
      const { identity } = toIdentity({ fullName: ' Billy\u202E \n Bob ' }, split)
      expect(identity).toMatchObject({ fullName: 'Billy Bob', firstName: 'Billy', lastName: 'Bob' })
    })
  })

  it('reads only own properties, so inherited names are not fields', () => {
    const attributes = Object.create({ email: 'inherited@example.com' }) as Record<string, unknown>
    expect(toIdentity(attributes, split).identity.email).toBeNull()
  })
})

describe('subject, issuer and the ID token', () => {
  const claims = {
    iss: 'https://idp.example.com',
    sub: 'u-123',
    aud: 'client',
    exp: 2_000_000_000,
    iat: 1_900_000_000,
    auth_time: 1_900_000_000,
    acr: 'urn:mace:incommon:iap:silver',
    amr: ['pwd', 'mfa'],
    email: 'Ada@Example.COM',
    email_verified: true,
    name: 'Ada Lovelace',
    preferred_username: 'ada',
  }

  it('warns when nothing gives a subject, and takes one the mapping gives', () => {
    expect(toIdentity({ email: 'a@example.com' }, split).warnings.map((w) => w.message)).toEqual([
      expect.stringMatching(/^subject: none .*another account at another provider/),
    ])
    const mapped = toIdentity({ subject: 42, email: 'a@example.com' }, { ...split, issuer: null })
    expect(mapped.identity.subject).toBe('42')
    expect(mapped.warnings).toEqual([])
  })

  it("takes the ID token's claims first and fills only the gaps from the mapping", () => {
    const { identity, warnings } = toIdentity(
      { email: 'other@example.com', emailVerified: false, userName: 'x', lastName: 'Byron' },
      { ...split, claims, issuer: 'https://ignored.example.com' },
    )
    expect(warnings).toEqual([])
    expect(identity).toMatchObject({
      subject: 'u-123',
      issuer: 'https://idp.example.com',
      email: 'Ada@example.com',
      emailVerified: true,
      userName: 'ada',
      fullName: 'Ada Lovelace',
      firstName: null,
      lastName: 'Byron',
      authTime: new Date(1_900_000_000_000).toISOString(),
      acr: 'urn:mace:incommon:iap:silver',
      amr: ['pwd', 'mfa'],
    })
  })

  it('keeps emailVerified with the email it belongs to', () => {
    const noEmailClaim = { ...claims, email: undefined, email_verified: undefined }
    expect(
      toIdentity(
        { email: 'm@example.com', emailVerified: 'false' },
        { ...split, claims: noEmailClaim },
      ).identity,
    ).toMatchObject({ email: 'm@example.com', emailVerified: false })
    expect(
      toIdentity(
        { email: 'm@example.com' },
        { ...split, claims: { ...claims, email_verified: 'yes' } },
      ).identity.emailVerified,
    ).toBeNull()
    expect(toIdentity({ emailVerified: true }, split).identity.emailVerified).toBeNull()
  })

  it("uses the integration's issuer without an ID token", () => {
    expect(
      toIdentity({ subject: 's' }, { ...split, issuer: 'https://idp.example.com' }).identity.issuer,
    ).toBe('https://idp.example.com')
  })
})

describe('withUserInfoClaims', () => {
  const idToken = {
    iss: 'https://idp.example.com',
    sub: 'u-123',
    aud: 'client',
    exp: 2_000_000_000,
    iat: 1_900_000_000,
    auth_time: 1_900_000_000,
    acr: 'urn:acr:silver',
    amr: ['pwd'],
  }

  it("keeps the ID token's claims over the userinfo ones", () => {
    const claims = {
      ...idToken,
      preferred_username: 'ada',
      name: 'Ada Lovelace',
      given_name: 'Ada',
      family_name: 'Lovelace',
      email: 'ada@example.com',
      email_verified: true,
    }
    const userInfo = {
      sub: 'u-123',
      preferred_username: 'other',
      name: 'Other Person',
      given_name: 'Other',
      family_name: 'Person',
      email: 'other@example.com',
      email_verified: false,
    }
    expect(withUserInfoClaims(claims, userInfo)).toEqual(claims)
  })

  it('fills the missing name claims from userinfo', () => {
    const userInfo = {
      preferred_username: 'ada',
      name: 'Ada Lovelace',
      given_name: 'Ada',
      family_name: 'Lovelace',
    }
    expect(withUserInfoClaims({ ...idToken, given_name: 'Augusta' }, userInfo)).toEqual({
      ...idToken,
      preferred_username: 'ada',
      name: 'Ada Lovelace',
      given_name: 'Augusta',
      family_name: 'Lovelace',
    })
  })

  it('treats a null claim as missing on either side', () => {
    const merged = withUserInfoClaims(
      { ...idToken, name: null, given_name: 'Ada' },
      { name: 'Ada Lovelace', given_name: null, family_name: null },
    )
    expect(merged.name).toBe('Ada Lovelace')
    expect(merged.given_name).toBe('Ada')
    expect(Object.hasOwn(merged, 'family_name')).toBe(false)
  })

  it("takes userinfo's email with userinfo's email_verified, false staying false", () => {
    const claims = { ...idToken, email_verified: true }
    const merged = withUserInfoClaims(claims, {
      email: 'ada@example.com',
      email_verified: false,
    })
    expect(merged.email).toBe('ada@example.com')
    expect(merged.email_verified).toBe(false)
    expect(
      withUserInfoClaims(idToken, { email: 'ada@example.com', email_verified: true }),
    ).toMatchObject({ email: 'ada@example.com', email_verified: true })
  })

  it('takes no email_verified from the ID token for an email from userinfo that has none', () => {
    for (const userInfo of [
      { email: 'ada@example.com' },
      { email: 'ada@example.com', email_verified: null },
    ]) {
      const merged = withUserInfoClaims({ ...idToken, email_verified: true }, userInfo)
      expect(merged.email).toBe('ada@example.com')
      expect(Object.hasOwn(merged, 'email_verified')).toBe(false)
    }
  })

  it('fills the email when the ID token has email: null', () => {
    const merged = withUserInfoClaims(
      { ...idToken, email: null, email_verified: true },
      { email: 'ada@example.com', email_verified: false },
    )
    expect(merged).toMatchObject({ email: 'ada@example.com', email_verified: false })
  })

  it('keeps the email and email_verified of an ID token that has an email', () => {
    const claims = { ...idToken, email: 'ada@example.com', email_verified: false }
    const merged = withUserInfoClaims(claims, { email: 'other@example.com', email_verified: true })
    expect(merged).toMatchObject({ email: 'ada@example.com', email_verified: false })
    const unsaid = { ...idToken, email: 'ada@example.com' }
    const kept = withUserInfoClaims(unsaid, { email: 'other@example.com', email_verified: true })
    expect(kept.email).toBe('ada@example.com')
    expect(Object.hasOwn(kept, 'email_verified')).toBe(false)
  })

  it('takes no email_verified from userinfo without its email', () => {
    const merged = withUserInfoClaims(idToken, { email_verified: true })
    expect(Object.hasOwn(merged, 'email')).toBe(false)
    expect(Object.hasOwn(merged, 'email_verified')).toBe(false)
  })

  it('never takes sub, auth_time, acr or amr from userinfo', () => {
    const userInfo = {
      sub: 'someone-else',
      auth_time: 2_100_000_000,
      acr: 'urn:acr:gold',
      amr: ['hwk'],
      name: 'Ada Lovelace',
    }
    const merged = withUserInfoClaims(idToken, userInfo)
    expect(merged).toMatchObject({
      sub: 'u-123',
      auth_time: 1_900_000_000,
      acr: 'urn:acr:silver',
      amr: ['pwd'],
      name: 'Ada Lovelace',
    })
    const bare = withUserInfoClaims({ iss: 'https://idp.example.com' }, userInfo)
    for (const claim of ['sub', 'auth_time', 'acr', 'amr']) {
      expect(Object.hasOwn(bare, claim), claim).toBe(false)
    }
  })

  it("reads only the userinfo answer's own properties", () => {
    const userInfo = Object.create({ name: 'Inherited', email: 'i@example.com' }) as object
    const merged = withUserInfoClaims(idToken, userInfo)
    expect(merged).toEqual(idToken)
  })

  it('adds nothing from a userinfo answer that is not an object', () => {
    for (const userInfo of [
      null,
      undefined,
      [{ name: 'Ada Lovelace', email: 'ada@example.com' }],
      'name=Ada',
      42,
      true,
    ]) {
      expect(withUserInfoClaims(idToken, userInfo), JSON.stringify(userInfo)).toEqual(idToken)
    }
  })

  it('does not change its inputs', () => {
    const claims = { ...idToken, email_verified: true, given_name: 'Ada' }
    const userInfo = { email: 'ada@example.com', name: 'Ada Lovelace', family_name: 'Lovelace' }
    const claimsBefore = structuredClone(claims)
    const userInfoBefore = structuredClone(userInfo)
    const merged = withUserInfoClaims(claims, userInfo)
    expect(merged).toMatchObject({ email: 'ada@example.com', name: 'Ada Lovelace' })
    expect(claims).toEqual(claimsBefore)
    expect(userInfo).toEqual(userInfoBefore)
  })

  describe('through toIdentity', () => {
    const claims = { ...idToken, email_verified: true }
    const attributes = { subject: 'u-123', email: 'ada@example.com' }

    it('gives emailVerified: false for an email userinfo marks unverified', () => {
      const userInfo = { sub: 'u-123', email: 'Ada@Example.com', email_verified: false }
      const { identity } = toIdentity(attributes, {
        splitFullName: true,
        claims: withUserInfoClaims(claims, userInfo),
      })
      expect(identity).toMatchObject({
        subject: 'u-123',
        email: 'Ada@example.com',
        emailVerified: false,
      })
    })

    it("gives emailVerified: null for a userinfo email that says nothing, not the ID token's true", () => {
      const userInfo = { sub: 'u-123', email: 'ada@example.com' }
      const { identity } = toIdentity(attributes, {
        splitFullName: true,
        claims: withUserInfoClaims(claims, userInfo),
      })
      expect(identity).toMatchObject({ email: 'ada@example.com', emailVerified: null })
    })

    it('splits a name that only userinfo gives', () => {
      const { identity } = toIdentity(
        {},
        { splitFullName: true, claims: withUserInfoClaims(claims, { name: 'Ada Lovelace' }) },
      )
      expect(identity).toMatchObject({
        fullName: 'Ada Lovelace',
        firstName: 'Ada',
        lastName: 'Lovelace',
      })
    })
  })
})
