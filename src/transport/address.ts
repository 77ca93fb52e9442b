/** "host:port" addresses, as peer maps and listen options spell them ("[::1]:7000" for IPv6). */
import { TransportError } from './errors.ts';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

const addressBytesMax = 300;

/** Throws `TransportError` ('INVALID_ADDRESS'); port 0 only when `allowPortZero` (listening). */
export function parseAddress(text: unknown, allowPortZero: boolean): HostPort {
  const bad = (why: string): never => {
    throw new TransportError('INVALID_ADDRESS', `address ${JSON.stringify(text)}: ${why}`, {
      address: typeof text === 'string' ? text.slice(0, addressBytesMax) : null,
    });
  };
  if (typeof text !== 'string' || text.length > addressBytesMax) return bad('not a short string');
  const colon = text.lastIndexOf(':');
  if (colon <= 0) return bad('expected host:port');
  let host = text.slice(0, colon);
  const portText = text.slice(colon + 1);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  else if (host.includes(':')) return bad('an IPv6 host goes in brackets');
  if (host === '' || /[\s/[\]]/.test(host)) return bad('the host is empty or malformed');
  if (!/^[0-9]{1,5}$/.test(portText)) return bad('the port is not a number');
  const port = Number(portText);
  if (port > 65535 || (port === 0 && !allowPortZero)) return bad('the port is out of range');
  return { host, port };
}

export function formatAddress(address: HostPort): string {
  return address.host.includes(':')
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
}
