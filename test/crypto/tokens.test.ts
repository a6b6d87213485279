import { describe, expect, it } from 'vitest'
import { createSealer } from '../../src/crypto/sealer.ts'
import { randomBytesPooled, randomToken } from '../../src/crypto/tokens.ts'

describe('randomBytesPooled', () => {
  it('hands every byte out once, across refills, and never changes what it handed out', () => {
    // 1,000 draws of 32 bytes span several 4 KiB refills.
    const views = Array.from({ length: 1000 }, () => randomBytesPooled(32))
    const atDraw = views.map((view) => view.toString('hex'))
    for (let i = 0; i < 300; i++) randomBytesPooled(17)
    expect(views.map((view) => view.toString('hex'))).toEqual(atDraw)
    expect(new Set(atDraw).size).toBe(atDraw.length)
    for (const view of views) expect(view.length).toBe(32)
    // Not all zero or constant: the bytes are spread over all values.
    const all = Buffer.concat(views)
    expect(new Set(all).size).toBeGreaterThan(250)
  })

  it.each([0, -1, 1.5, 4097, Number.NaN])('refuses %s bytes', (bytes) => {
    expect(() => randomBytesPooled(bytes)).toThrow(RangeError)
  })

  it('randomToken is base64url of that many fresh bytes', () => {
    const tokens = Array.from({ length: 200 }, () => randomToken())
    for (const token of tokens) expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(new Set(tokens).size).toBe(tokens.length)
    expect(randomToken(8)).toMatch(/^[A-Za-z0-9_-]{11}$/)
  })

  it('sealing draws a fresh IV each time', () => {
    const sealer = createSealer('k'.repeat(40))
    const context = { tenantId: 't', table: 'auth_sessions', rowId: 'r', column: 'code_verifier' }
    const sealed = Array.from({ length: 50 }, () => sealer.seal('same plaintext', context))
    const ivs = sealed.map((s) => s.split('.')[2])
    expect(new Set(ivs).size).toBe(50)
    for (const s of sealed) expect(sealer.open(s, context)).toBe('same plaintext')
  })
})
