// The parts of age-encryption the device-key page uses, exposed as the global `age`.
export { Decrypter, armor } from "age-encryption";
