/** The S256 code challenge of services/sign-in.ts against RFC 7636's own example and oauth4webapi. */
import * as oauth from 'oauth4webapi'
import { describe, expect, it } from 'vitest'
import { pkceChallenge } from '../../src/services/sign-in.ts'

describe('pkceChallenge', () => {
  it("gives RFC 7636 appendix B's challenge", () => {
    expect(pkceChallenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk')).toBe(
      'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    )
  })

  it('agrees with oauth4webapi on random verifiers', async () => {
    for (let i = 0; i < 50; i += 1) {
      const verifier = oauth.generateRandomCodeVerifier()
      expect(pkceChallenge(verifier)).toBe(await oauth.calculatePKCECodeChallenge(verifier))
    }
  })
})
