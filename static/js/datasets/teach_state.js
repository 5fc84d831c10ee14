// The teach page's state (one table, in the URL): which dataset and which class pictures go to.

const DATASET_ID = /^[0-9a-f]{16}$/;

export const TEACH_STATE = [
  {
    name: "dataset",
    type: "custom",
    default: "",
    parse: (text) => (text === "" || DATASET_ID.test(text) ? text : undefined),
    format: (value) => value,
  },
  { name: "class", type: "int", default: 0, min: 0, max: 1000000 },
];
