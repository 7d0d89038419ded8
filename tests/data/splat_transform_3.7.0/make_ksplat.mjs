// Writes a .ksplat with GaussianSplats3D 0.4.7 (its own util/create-ksplat.js, same calls):
// node make_ksplat.mjs IN.ply OUT.ksplat COMPRESSION_LEVEL SH_DEGREE
import * as G from '@mkkellogg/gaussian-splats-3d';
import * as THREE from 'three';
import * as fs from 'fs';
const [input, output, level, degree] = process.argv.slice(2);
const data = fs.readFileSync(input);
const buffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
const splats = G.PlyParser.parseToUncompressedSplatArray(buffer, parseInt(degree));
const generator = G.SplatBufferGenerator.getStandardGenerator(1, parseInt(level), 0, new THREE.Vector3(), 5.0, 256);
const splatBuffer = generator.generateFromUncompressedSplatArray(splats);
fs.writeFileSync(output, new Uint8Array(splatBuffer.bufferData));
