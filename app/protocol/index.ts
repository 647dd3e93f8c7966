export * from './envelope.ts';
export * from './errors.ts';
export * from './events.ts';
export * from './rooms.ts';
export * from './schemas.ts';
export * from './sequence.ts';
